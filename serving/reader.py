"""The one reader of the published warehouse (``DATA_DIR/published/warehouse.duckdb``, see :mod:`warehouse.publish`).

DuckDB detail that shapes everything here: ``duckdb.connect(path)`` goes through a per-process *instance cache*
keyed by path. While any connection to the old published file is open in the process, a new
``duckdb.connect(path, read_only=True)`` returns that cached instance -- the OLD version, for as long as
connections overlap (forever, in a busy server). Readers here therefore never ``duckdb.connect(path)``: they
``ATTACH`` the path READ_ONLY (which opens it afresh) in an in-memory instance. A reader that attached the old
file keeps reading the old inode until it detaches (Linux keeps an unlinked, open file alive), so a query never
sees a mix of versions.

- :func:`open_published`: a short-lived connection (the dashboard, the probe, scripts).
- :class:`PublishedReader`: the API's per-request sessions. Opening a DuckDB database costs ~10 ms (a new
  instance), too much per request. So in ``cached`` mode each process keeps one in-memory instance per
  published version with the file attached, and gives each request its own cursor on it. Every request
  ``stat``-s the published path (about a microsecond); when the file was replaced (new inode/mtime/size) the
  next request attaches the new file, and the old instance is dropped once its last request finishes. In
  ``per_request`` mode every request ATTACHes and DETACHes the file instead (slower; see bench/README.md).
  A session's queries are interrupted after ``SERVING_QUERY_TIMEOUT_S`` (:class:`QueryTimeout`).
"""

from __future__ import annotations

import itertools
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb

from settings import PUBLISHED_FILE, Settings
from ingestion.sql_text import sql_identifier, sql_string
from warehouse.publish import PublishedVersion

CONNECTION_MODES = ("cached", "per_request")


class PublishedWarehouseMissing(FileNotFoundError):
    """No published warehouse exists yet (no successful run has published one)."""


class QueryTimeout(TimeoutError):
    """A session's queries ran longer than ``SERVING_QUERY_TIMEOUT_S`` and were interrupted."""


@contextmanager
def _time_limit(con: duckdb.DuckDBPyConnection, seconds: float) -> Iterator[None]:
    """Interrupt ``con``'s running query once ``seconds`` have passed since entering (DuckDB has no statement
    timeout; ``interrupt`` from another thread stops the query at its next check, within milliseconds)."""
    if seconds <= 0:
        yield
        return
    timer = threading.Timer(seconds, con.interrupt)
    timer.daemon = True
    timer.start()
    try:
        yield
    except duckdb.InterruptException as exc:
        raise QueryTimeout(f"The warehouse queries of this request took longer than {seconds:g} s "
                           "(SERVING_QUERY_TIMEOUT_S) and were stopped; ask for a smaller range.") from exc
    finally:
        timer.cancel()


def published_path(published: str | os.PathLike | None = None) -> Path:
    """The published warehouse file.

    ``published`` may be the file or its folder; ``None`` means ``$PUBLISHED_WAREHOUSE`` when set, else
    ``$DATA_DIR/published/warehouse.duckdb``.
    """
    if published is None:
        return Settings.from_env().published_path
    path = Path(published)
    if path.is_dir() or path.suffix != ".duckdb":
        return path / PUBLISHED_FILE
    return path


def reader_instance(threads: int = 1, memory_limit: str = "1GB") -> duckdb.DuckDBPyConnection:
    """A fresh in-memory DuckDB instance for attaching published copies (never the path instance cache)."""
    return duckdb.connect(":memory:", config={"threads": threads, "memory_limit": memory_limit})


_instance: duckdb.DuckDBPyConnection | None = None
_instance_lock = threading.Lock()
_aliases = itertools.count()


def _shared_cursor() -> duckdb.DuckDBPyConnection:
    """A new cursor (own connection, same database instance) on the process-wide reader instance."""
    global _instance
    with _instance_lock:
        if _instance is None:
            settings = Settings.from_env()
            _instance = reader_instance(settings.serving_duckdb_threads, settings.serving_duckdb_memory_limit)
        return _instance.cursor()


def attach_published(con: duckdb.DuckDBPyConnection, path: Path, alias: str) -> None:
    """``ATTACH`` the published file READ_ONLY as ``alias`` on ``con``, mapping "not there" to
    :class:`PublishedWarehouseMissing`."""
    if not path.exists():
        raise PublishedWarehouseMissing(
            f"No published warehouse at {path} yet: a successful pipeline run publishes it (make run).")
    try:
        con.execute(f"ATTACH {sql_string(path)} AS {sql_identifier(alias)} (READ_ONLY)")
    except duckdb.IOException as exc:
        if not path.exists():
            raise PublishedWarehouseMissing(f"No published warehouse at {path}.") from exc
        raise


@contextmanager
def open_published(published: str | os.PathLike | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """A short-lived read-only connection to the published warehouse (one version for its lifetime).

    ``published``: the file or its folder (default: see :func:`published_path`). Unqualified names work
    (``SELECT * FROM marts.dim_stores``). Raises :class:`PublishedWarehouseMissing` when none exists.
    Thread-safe: every call gets its own cursor on a process-wide in-memory instance and attaches the
    file under its own alias, detached on exit.
    """
    path = published_path(published)
    alias = f"published_{next(_aliases)}"
    cur = _shared_cursor()
    try:
        attach_published(cur, path, alias)
        try:
            cur.execute(f"USE {sql_identifier(alias)}")
            yield cur
        finally:
            cur.execute("USE memory")
            cur.execute(f"DETACH {sql_identifier(alias)}")
    finally:
        cur.close()


def read_publication(source: duckdb.DuckDBPyConnection | str | os.PathLike | None = None) -> PublishedVersion:
    """The publication record of a published copy (an open connection to it, or its path/folder)."""
    if not isinstance(source, duckdb.DuckDBPyConnection):
        with open_published(source) as con:
            return read_publication(con)
    con = source
    row = con.execute(
        "SELECT version_id, published_at, source_run, previous_version_id FROM meta.publication").fetchall()[0]
    path = con.execute(
        "SELECT path FROM duckdb_databases() WHERE database_name = current_database()").fetchall()[0][0]
    recorded = con.execute(
        "SELECT table_schema, table_name, n_rows, checksum FROM meta.published_tables ORDER BY 1, 2").fetchall()
    return PublishedVersion(version_id=row[0], published_at=row[1], source_run=row[2], path=Path(path),
                            previous_version_id=row[3], tables={f"{s}.{t}": n for s, t, n, _ in recorded},
                            checksums={f"{s}.{t}": int(c) for s, t, _, c in recorded})


# ------------------------------------------------------------------------------------------ API sessions

_PUBLICATION_SQL = "SELECT version_id, published_at, source_run FROM meta.publication"


@dataclass
class Session:
    """One request's view of one published version; ``cache`` lives as long as that version is served."""

    con: duckdb.DuckDBPyConnection
    version_id: str
    published_at: datetime
    source_run: str | None
    cache: dict = field(repr=False, default_factory=dict)

    def cached(self, key: str, compute):
        """``compute()`` once per published version (results derived from it, e.g. the store ids)."""
        if key not in self.cache:
            self.cache[key] = compute()
        return self.cache[key]


class _Snapshot:
    """One published version attached in its own in-memory instance (cached mode)."""

    def __init__(self, path: Path, identity: tuple, settings: Settings):
        self.identity = identity
        self.db = reader_instance(settings.serving_duckdb_threads, settings.serving_duckdb_memory_limit)
        attach_published(self.db, path, "published")
        self.db.execute("USE published")
        self.version_id, self.published_at, self.source_run = self.db.execute(_PUBLICATION_SQL).fetchall()[0]
        self.cache: dict = {}
        self._lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            cur = self.db.cursor()
        cur.execute("USE published")
        return cur


class PublishedReader:
    """Hands out per-request sessions on the published warehouse (see the module docstring).

    ``path``: the file or its folder (default: ``settings.published_path``); ``mode``: ``cached`` or
    ``per_request`` (default: ``settings.serving_connection_mode``); ``settings``: default
    :meth:`Settings.from_env`.
    """

    def __init__(self, path: str | os.PathLike | None = None, mode: str | None = None, *,
                 settings: Settings | None = None):
        self.settings = settings or Settings.from_env()
        self.path = published_path(path) if path is not None else self.settings.published_path
        self.mode = mode or self.settings.serving_connection_mode
        if self.mode not in CONNECTION_MODES:
            raise ValueError(f"SERVING_CONNECTION_MODE must be 'cached' or 'per_request', not {self.mode!r}")
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        self._caches: dict[str, dict] = {}  # per_request mode: version_id -> derived cache
        self.on_session: Callable[[Session], None] | None = None  # told which version each session reads

    def _missing(self) -> PublishedWarehouseMissing:
        return PublishedWarehouseMissing(
            f"No published warehouse at {self.path} yet: the pipeline publishes one after a successful run "
            "(make run).")

    def _identity(self) -> tuple:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise self._missing() from None
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    def _current_snapshot(self) -> _Snapshot:
        identity = self._identity()
        snap = self._snapshot
        if snap is None or snap.identity != identity:
            with self._lock:
                snap = self._snapshot
                if snap is None or snap.identity != self._identity():
                    try:
                        snap = _Snapshot(self.path, self._identity(), self.settings)
                    except PublishedWarehouseMissing:
                        raise self._missing() from None
                    self._snapshot = snap  # the old one lives on while requests still hold it
        return snap

    @contextmanager
    def session(self) -> Iterator[Session]:
        with self._open_session() as session, _time_limit(session.con, self.settings.serving_query_timeout_s):
            if self.on_session is not None:
                self.on_session(session)
            yield session

    @contextmanager
    def _open_session(self) -> Iterator[Session]:
        if self.mode == "cached":
            snap = self._current_snapshot()
            cur = snap.cursor()
            try:
                yield Session(cur, snap.version_id, snap.published_at, snap.source_run, snap.cache)
            finally:
                cur.close()
            return
        try:
            with open_published(self.path) as cur:
                version_id, published_at, source_run = cur.execute(_PUBLICATION_SQL).fetchall()[0]
                with self._lock:
                    cache = self._caches.setdefault(version_id, {})
                    for old in list(self._caches)[:-2]:
                        del self._caches[old]
                yield Session(cur, version_id, published_at, source_run, cache)
        except PublishedWarehouseMissing:
            raise self._missing() from None
