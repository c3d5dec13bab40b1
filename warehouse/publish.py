"""Publishing the build warehouse as a consistent, read-only copy (the writer side).

DuckDB allows one writing process *or* many reading processes on a file, never both. So the pipeline
writes only to its build warehouse and, after a run whose checks passed, :func:`publish_warehouse`

1. attaches the build warehouse READ_ONLY and a new temporary file in ``published_dir``, written in the DuckDB
   storage version ``storage_version`` (default ``v1.0.0``, which every DuckDB client from 1.0 on reads: BI
   drivers and DBeaver bundle 1.x releases that refuse 2.x files),
2. copies the schemas readers need (default ``marts`` and ``ml``; views are materialised as tables, so
   the copy never refers to anything outside itself) in one transaction, sorted by store and date so a
   single-store lookup only touches a few row groups,
3. records what it published in the copy itself (``meta.publication``, ``meta.published_tables``,
   ``meta.publication_history``), CHECKPOINTs and closes it, fsyncs it, makes it read-only (0444),
4. ``os.replace``-s it onto ``published_dir/warehouse.duckdb`` -- atomic on POSIX.

Nobody ever writes the published file, so a reader never blocks the pipeline; readers
(:mod:`serving.reader`) keep reading the inode they opened until they close it. A publish that fails
removes its temporary file and leaves the previous copy untouched. Publishers serialise on
``published_dir/.publish.lock``.
"""

from __future__ import annotations

import fcntl
import logging
import os
import shutil
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from ingestion.sql_text import sql_identifier, sql_string
from settings import PUBLISH_STORAGE_VERSION, PUBLISHED_FILE, Settings

log = logging.getLogger(__name__)

DEFAULT_SCHEMAS: tuple[str, ...] = ("marts", "ml")
META_SCHEMA = "meta"
LOCK_FILE = ".publish.lock"
# Copies are sorted by these columns (those present, in this order) so DuckDB's per-row-group min/max
# statistics prune everything but a store's own row groups on `WHERE store_id = ?`.
SORT_KEYS = ("store_id", "model", "model_version")
DATE_KEYS = ("forecast_date", "sale_date", "month_start", "week_start")


@dataclass(frozen=True)
class PublishedVersion:
    """What one publication wrote: recorded in ``meta.publication`` inside the copy itself."""

    version_id: str
    published_at: datetime  # UTC (naive, like every TIMESTAMP in the warehouse)
    source_run: str
    path: Path
    previous_version_id: str | None = None
    tables: dict[str, int] = field(default_factory=dict)  # "schema.table" -> rows
    checksums: dict[str, int] = field(default_factory=dict)  # "schema.table" -> sum of row hashes

    @property
    def n_rows(self) -> int:
        return sum(self.tables.values())


def new_version_id(now: datetime | None = None) -> str:
    """Sortable and unique: UTC time to the microsecond plus a random suffix."""
    now = now or datetime.now(timezone.utc)
    return f"{now:%Y%m%dT%H%M%S.%fZ}-{uuid.uuid4().hex[:6]}"


# ------------------------------------------------------------------------------------------ publish


@contextmanager
def _publish_lock(published_dir: Path) -> Iterator[None]:
    with open(published_dir / LOCK_FILE, "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _temp_files(published_dir: Path) -> list[Path]:
    return sorted(published_dir.glob(f".{PUBLISHED_FILE}.*.tmp*"))


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass


def remove_stale_temp_files(published_dir: str | os.PathLike) -> list[Path]:
    """Remove the temporary files a publisher that died left in ``published_dir`` (under the publish lock, so
    never a running publisher's); returns them."""
    published_dir = Path(published_dir)
    if not published_dir.is_dir():
        return []
    with _publish_lock(published_dir):
        return _remove_temp_files(published_dir)


def _remove_temp_files(published_dir: Path) -> list[Path]:
    stale = _temp_files(published_dir)
    for path in stale:
        _remove(path)
    return stale


def fsync_path(path: Path, directory: bool = False) -> None:
    """Flush a file's (or, with ``directory``, a folder's entries') writes to disk: an atomic rename is durable only then."""
    fd = os.open(path, os.O_RDONLY | (os.O_DIRECTORY if directory else 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _source_objects(con: duckdb.DuckDBPyConnection, catalog: str, schemas: Sequence[str]) -> list[tuple]:
    return con.execute(
        """
        SELECT schema_name, table_name, 'table' AS kind FROM duckdb_tables()
        WHERE database_name = $catalog AND list_contains($schemas, schema_name) AND NOT temporary
        UNION ALL
        SELECT schema_name, view_name, 'view' FROM duckdb_views()
        WHERE database_name = $catalog AND list_contains($schemas, schema_name)
          AND NOT internal AND NOT temporary
        ORDER BY 1, 2
        """,
        {"catalog": catalog, "schemas": list(schemas)},
    ).fetchall()


def _order_by(con: duckdb.DuckDBPyConnection, catalog: str, schema: str, table: str) -> str:
    columns = {
        r[0]
        for r in con.execute(
            "SELECT column_name FROM duckdb_columns() "
            "WHERE database_name = ? AND schema_name = ? AND table_name = ?",
            [catalog, schema, table],
        ).fetchall()
    }
    if "store_id" not in columns:
        return ""
    keys = [k for k in SORT_KEYS if k in columns]
    keys += [k for k in DATE_KEYS if k in columns][:1]
    return " ORDER BY " + ", ".join(sql_identifier(k) for k in keys)


def _previous_history(con: duckdb.DuckDBPyConnection, target: Path) -> list[tuple]:
    """Rows of the current copy's meta.publication_history (empty when there is none or it is unreadable)."""
    if not target.exists():
        return []
    try:
        con.execute(f"ATTACH {sql_string(target)} AS __publish_prev (READ_ONLY)")
    except duckdb.Error as exc:  # unreadable previous copy: publish anyway, without its history
        log.warning("could not read the previous published copy %s: %s", target, exc)
        return []
    try:
        return con.execute(
            "SELECT version_id, published_at, source_run, source_path, previous_version_id, schemas, "
            "n_tables, n_rows FROM __publish_prev.meta.publication_history ORDER BY published_at"
        ).fetchall()
    except duckdb.Error:
        return []
    finally:
        con.execute("DETACH __publish_prev")


def publish_warehouse(
    build: str | os.PathLike | duckdb.DuckDBPyConnection,
    published_dir: str | os.PathLike,
    *,
    source_run: str,
    schemas: Sequence[str] = DEFAULT_SCHEMAS,
    threads: int = 1,
    storage_version: str = PUBLISH_STORAGE_VERSION,
    reader_group: str | None = None,
) -> PublishedVersion:
    """Publish ``schemas`` of the build warehouse as ``published_dir/warehouse.duckdb``, atomically.

    ``build`` is the build warehouse's path (attached READ_ONLY: the caller must not hold a write
    connection to it from another process) or an open connection to it (its default catalog is copied;
    it must not be inside a transaction). ``source_run`` names what produced the data (e.g. the Dagster
    run id). Views in ``schemas`` are materialised as tables. ``threads``: DuckDB threads for the copy
    (default 1: the copy takes about as long, and leaves the other cores to readers of the previous
    version meanwhile). ``storage_version``: the copy's DuckDB storage format (``ATTACH ... (STORAGE_VERSION
    'v1.0.0')``: DuckDB 1.0 and later open it; ``v1.2.0``: 1.2 and later, a little smaller); empty: the
    writer's own format (only clients of the same major version read it). ``reader_group``: the group that may
    read the copy (``PLATFORM_READER_GROUP``; None: the owner's group); others cannot. Raises if anything fails;
    the previous published copy is then unchanged.
    """
    published_dir = Path(published_dir)
    published_dir.mkdir(parents=True, exist_ok=True)
    target = published_dir / PUBLISHED_FILE
    schemas = tuple(schemas)
    if not schemas:
        raise ValueError("publish_warehouse: no schemas to publish")

    with _publish_lock(published_dir):
        _remove_temp_files(published_dir)  # left by a publisher that died; we hold the lock
        published_at = datetime.now(timezone.utc)
        version_id = new_version_id(published_at)
        tmp = published_dir / f".{PUBLISHED_FILE}.{version_id}.tmp"
        try:
            version = _write_copy(build, tmp, target, schemas, version_id=version_id,
                                  published_at=published_at.replace(tzinfo=None), source_run=source_run,
                                  threads=threads, storage_version=storage_version)
            if reader_group is not None:
                shutil.chown(tmp, group=reader_group)
            os.chmod(tmp, 0o440)  # read-only, and only for the owner and the reader group
            fsync_path(tmp)
            os.replace(tmp, target)
            fsync_path(published_dir, directory=True)
        except BaseException:
            _remove_temp_files(published_dir)
            raise
    log.info("published %s (%d tables, %d rows, storage version %s) to %s", version.version_id,
             len(version.tables), version.n_rows, storage_version or "default", target)
    return version


def _write_copy(build, tmp: Path, target: Path, schemas: tuple[str, ...], *, version_id: str,
                published_at: datetime, source_run: str, threads: int, storage_version: str) -> PublishedVersion:
    own_connection = not isinstance(build, duckdb.DuckDBPyConnection)
    if own_connection:
        build_path = Path(build)
        if not build_path.exists():
            raise FileNotFoundError(f"build warehouse {build_path} does not exist")
        con = duckdb.connect(":memory:", config={"threads": max(1, int(threads))})
        con.execute(f"ATTACH {sql_string(build_path.resolve())} AS __publish_src (READ_ONLY)")
        src = "__publish_src"
        source_path = str(build_path.resolve())
    else:
        con = build
        src = con.execute("SELECT current_database()").fetchall()[0][0]
        source_path = con.execute(
            "SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0] or src
    dst = "__publish_dst"
    try:
        history = _previous_history(con, target)
        objects = _source_objects(con, src, schemas)
        missing = sorted(set(schemas) - {s for s, _, _ in objects})
        if missing:
            raise ValueError(f"publish_warehouse: the build warehouse has no tables in schema(s) {missing}")
        # Every table goes through CREATE TABLE AS into this file, so all of it is written in its storage version.
        options = f" (STORAGE_VERSION {sql_string(storage_version)})" if storage_version else ""
        con.execute(f"ATTACH {sql_string(tmp)} AS {dst}{options}")
        try:
            counts, checksums = _copy_objects(con, src, dst, objects)
            previous = history[-1][0] if history else None
            record = (version_id, published_at, source_run, source_path, previous, ",".join(schemas),
                      len(counts), sum(counts.values()))
            _write_meta(con, dst, record, history, objects, counts, checksums)
            con.execute(f"CHECKPOINT {dst}")
        finally:
            con.execute(f"DETACH {dst}")
    finally:
        if own_connection:
            con.close()
    return PublishedVersion(version_id=version_id, published_at=published_at, source_run=source_run,
                            path=target, previous_version_id=previous, tables=counts, checksums=checksums)


def table_fingerprint_sql(qualified_table: str) -> str:
    """Rows and an order-independent checksum (sum of row hashes) of a table: recorded at publish time
    in meta.published_tables, so a reader can verify that what it reads is exactly one version."""
    return f'SELECT count(*), coalesce(sum(hash("__row")::HUGEINT), 0) FROM {qualified_table} AS "__row"'


def _copy_objects(con, src: str, dst: str, objects: list[tuple]) -> tuple[dict[str, int], dict[str, int]]:
    counts: dict[str, int] = {}
    checksums: dict[str, int] = {}
    con.execute("BEGIN TRANSACTION")  # one snapshot of the source for every table
    try:
        for schema in sorted({s for s, _, _ in objects}):
            con.execute(f"CREATE SCHEMA IF NOT EXISTS {dst}.{sql_identifier(schema)}")
        for schema, name, _kind in objects:
            order_by = _order_by(con, src, schema, name)
            con.execute(
                f"CREATE TABLE {sql_identifier(dst, schema, name)} AS "
                f"SELECT * FROM {sql_identifier(src, schema, name)}{order_by}"
            )
            n_rows, checksum = con.execute(
                table_fingerprint_sql(sql_identifier(dst, schema, name))).fetchall()[0]
            counts[f"{schema}.{name}"], checksums[f"{schema}.{name}"] = n_rows, int(checksum)
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    return counts, checksums


def _write_meta(con, dst: str, record: tuple, history: list[tuple], objects: list[tuple],
                counts: dict[str, int], checksums: dict[str, int]) -> None:
    meta = f"{dst}.{META_SCHEMA}"
    columns = """(version_id VARCHAR NOT NULL, published_at TIMESTAMP NOT NULL, source_run VARCHAR,
                  source_path VARCHAR, previous_version_id VARCHAR, schemas VARCHAR, n_tables INTEGER,
                  n_rows BIGINT)"""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA {meta}")
        con.execute(f"CREATE TABLE {meta}.publication {columns}")
        con.execute(f"CREATE TABLE {meta}.publication_history {columns}")
        con.execute(f"CREATE TABLE {meta}.published_tables (table_schema VARCHAR NOT NULL, "
                    "table_name VARCHAR NOT NULL, source_kind VARCHAR NOT NULL, n_rows BIGINT NOT NULL, "
                    "checksum HUGEINT NOT NULL)")
        con.execute(f"INSERT INTO {meta}.publication VALUES (?, ?, ?, ?, ?, ?, ?, ?)", list(record))
        con.executemany(f"INSERT INTO {meta}.publication_history VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [list(r) for r in [*history, record]])
        con.executemany(f"INSERT INTO {meta}.published_tables VALUES (?, ?, ?, ?, ?)",
                        [[s, n, k, counts[f"{s}.{n}"], checksums[f"{s}.{n}"]] for s, n, k in objects])
        con.execute("COMMIT")
    except BaseException:
        con.execute("ROLLBACK")
        raise


def main(argv: list[str] | None = None) -> int:
    """``python -m warehouse.publish [--build PATH] [--published-dir DIR]`` (``make publish``): publish the state the
    last run whose checks all passed committed to the build warehouse (warehouse/staging.py), holding the run lock
    so no run is under way, and say which run that was."""
    import argparse
    import sys

    from orchestration.run_guard import RunLockBusy, run_lock
    from warehouse.staging import last_commit

    settings = Settings.from_env()
    parser = argparse.ArgumentParser(description="Publish the build warehouse as a read-only copy.")
    parser.add_argument("--build", default=str(settings.build_warehouse))
    parser.add_argument("--published-dir", default=str(settings.published_dir))
    parser.add_argument("--schemas", default=",".join(DEFAULT_SCHEMAS), help="comma-separated")
    parser.add_argument("--storage-version", default=settings.publish_storage_version,
                        help="DuckDB storage version of the copy (default $PUBLISH_STORAGE_VERSION or "
                             f"{PUBLISH_STORAGE_VERSION}; empty: the writer's own format)")
    args = parser.parse_args(argv)
    try:
        with run_lock(settings.run_lock_path, "manual-publish", settings.run_lock_timeout_s):
            committed = last_commit(args.build)
            if committed is None:
                print(f"{args.build} holds no state committed by a run whose checks passed (no meta.commits): "
                      "nothing was published; run the pipeline (make run) first.", file=sys.stderr)
                return 1
            version = publish_warehouse(args.build, args.published_dir, source_run=committed.run_id,
                                        schemas=[s for s in args.schemas.split(",") if s],
                                        storage_version=args.storage_version.strip())
    except RunLockBusy as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"published {version.version_id} ({len(version.tables)} tables, {version.n_rows:,} rows) to "
          f"{version.path}: the state of run {committed.run_id}, committed at {committed.committed_at:%Y-%m-%d %H:%M:%S} UTC")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
