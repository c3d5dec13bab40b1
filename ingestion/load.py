"""Load Rossmann-layout CSV files into the warehouse's `raw` schema.

Files are first loaded into a side schema (`raw_incoming`) so they can be validated before they
replace anything: `promote_incoming` swaps them into `raw` in one transaction, and a failed load or
validation leaves the previous `raw` tables untouched.
"""

from __future__ import annotations

import codecs
import gzip
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ingestion.raw_layout import (
    NULL_STRINGS,
    OPTIONAL_COLUMNS,
    OPTIONAL_TABLES,
    RAW_COLUMNS,
    RAW_FILES,
    RAW_SCHEMA,
    create_table_sql,
)
from ingestion.sql_text import sql_string

INCOMING_SCHEMA = "raw_incoming"
# The models cast features to float32: a larger magnitude would turn into infinity there.
MAX_ABS_DOUBLE = float(3.4e38)


class RawInputError(ValueError):
    """The raw input folder or one of its files is not in the expected Rossmann layout."""


@dataclass(frozen=True)
class RawLoad:
    table: str
    source_file: Path | None
    n_rows: int


def find_raw_files(raw_dir: Path) -> dict[str, Path | None]:
    """Map each raw table to its file in `raw_dir`; raise a clear error for a missing required file."""
    raw_dir = Path(raw_dir)
    if not raw_dir.is_dir():
        raise RawInputError(f"Raw data folder {raw_dir} does not exist (set RAW_DATA_DIR to a folder with "
                            "train.csv[.gz] and store.csv, or unset it to use the embedded default data).")
    found: dict[str, Path | None] = {}
    for table, names in RAW_FILES.items():
        path = next((raw_dir / n for n in names if (raw_dir / n).is_file()), None)
        if path is None and table not in OPTIONAL_TABLES:
            raise RawInputError(f"{raw_dir} has no {' or '.join(names)}: it is required.")
        found[table] = path
    return found


def _open_binary(path: Path):
    return gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb")


def _encoding_error(path: Path, chunk_size: int = 1 << 22) -> str | None:
    """Where `path` stops being UTF-8 (an optional BOM is UTF-8 too): a message with byte offset and line, or None.

    Streams the file, so it is only run to explain a failed read (DuckDB's own message names a wrong line)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset, lines = 0, 1
    with _open_binary(path) as fh:
        while True:
            chunk = fh.read(chunk_size)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # the decoder may hold back up to 3 bytes of the previous chunk: exc.start counts from those
                pending = exc.object[:len(exc.object) - len(chunk)] if len(exc.object) > len(chunk) else b""
                at = offset - len(pending) + exc.start
                line = lines - pending.count(b"\n") + exc.object[:exc.start].count(b"\n")
                bad = exc.object[exc.start:exc.start + 4]
                return (f"{path.name} is not UTF-8: byte {bad[:1]!r} at byte offset {at} (line {line}). "
                        "Save it as UTF-8 (with or without BOM); latin-1 / Windows-1252 exports need converting.")
            if not chunk:
                return None
            offset += len(chunk)
            lines += chunk.count(b"\n")


def _header(path: Path) -> list[str]:
    with _open_binary(path) as fh:
        raw = fh.readline()
    try:
        first = raw.decode("utf-8-sig").strip()
    except UnicodeDecodeError as exc:
        raise RawInputError(_encoding_error(path) or f"{path.name}: header is not UTF-8: {exc}") from exc
    return [c.strip().strip('"') for c in first.split(",")] if first else []


def _check_header(table: str, path: Path) -> list[str]:
    """Return the file's columns after checking them against the layout (extra columns are refused)."""
    expected = RAW_COLUMNS[table]
    header = _header(path)
    missing = [c for c in expected if c not in header and c not in OPTIONAL_COLUMNS.get(table, set())]
    unexpected = [c for c in header if c not in expected]
    if missing or unexpected or len(set(header)) != len(header):
        raise RawInputError(
            f"{path.name}: columns {header} do not match the Rossmann layout "
            f"{list(expected)} (missing: {missing or 'none'}, unexpected: {unexpected or 'none'})."
        )
    return header


def _select_sql(table: str, path: Path, header: list[str]) -> str:
    """SELECT giving the table's exact columns and types; absent optional columns become NULL."""
    columns = RAW_COLUMNS[table]
    file_types = ", ".join(f"'{c}': '{_file_type(columns[c])}'" for c in header)
    projection = ", ".join(c if c in header else f"CAST(NULL AS {t}) AS {c}" for c, t in columns.items())
    # Explicit types and no sniffing of types: a value that does not fit fails loudly with its line.
    return (
        f"SELECT {projection} FROM read_csv({sql_string(path.as_posix())}, header=true, delim=',', quote='\"', "
        f"columns={{{file_types}}}, dateformat='%Y-%m-%d', nullstr={NULL_STRINGS})"
    )


def _check_finite(con: duckdb.DuckDBPyConnection, table: str, path: Path, max_samples: int = 5) -> None:
    """Refuse inf / nan (DuckDB reads them as DOUBLEs) and magnitudes that are infinite in float32, per column."""
    for column in (c for c, t in RAW_COLUMNS[table].items() if t == "DOUBLE"):
        bad = con.execute(
            f'SELECT count(*), list("Store" ORDER BY "Store")[1:{max_samples}], '
            f'list("{column}" ORDER BY "Store")[1:{max_samples}] FROM {INCOMING_SCHEMA}.{table} '
            f'WHERE NOT isfinite("{column}") OR abs("{column}") > {MAX_ABS_DOUBLE}').fetchone()
        if bad[0]:
            samples = ", ".join(f"Store {s}: {v}" for s, v in zip(bad[1], bad[2]))
            raise RawInputError(f"{path.name}: column {column} has {bad[0]} value(s) that are not finite numbers "
                                f"(inf, nan or beyond {MAX_ABS_DOUBLE:g}), e.g. {samples}; leave unknown values blank.")


def _file_type(sql_type: str) -> str:
    # read_csv rounds 5263.7 into an INTEGER column silently: read whole-number columns as DOUBLE, check, then cast
    return "DOUBLE" if sql_type == "INTEGER" else sql_type


def _to_whole_numbers(con: duckdb.DuckDBPyConnection, table: str, path: Path) -> None:
    """Give the incoming table's integer columns their layout type, refusing values with a fraction."""
    name = f"{INCOMING_SCHEMA}.{table}"
    keys = [k for k in ("Store", "Date") if k in RAW_COLUMNS[table]]
    for column in (c for c, t in RAW_COLUMNS[table].items() if t == "INTEGER"):
        selected = ", ".join(f'"{c}"' for c in [*keys, column])
        rel = con.sql(f'SELECT {selected} FROM {name} WHERE "{column}" <> round("{column}") ORDER BY ALL')
        bad = rel.limit(5).fetchall()
        if bad:
            n = con.execute(f"SELECT count(*) FROM ({rel.sql_query()})").fetchall()[0][0]
            samples = "; ".join(", ".join(f"{c}={v}" for c, v in zip([*keys, column], row)) for row in bad)
            raise RawInputError(f"{path.name}: column {column} must hold whole numbers; {n} row(s) do not, "
                                f"e.g. {samples}")
        try:
            con.execute(f'ALTER TABLE {name} ALTER "{column}" TYPE INTEGER')
        except duckdb.Error as exc:  # e.g. beyond INTEGER's range
            raise RawInputError(f"{path.name}: column {column}: {exc}") from exc


def load_incoming(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> list[RawLoad]:
    """Load every raw file into `raw_incoming.<table>`, replacing what a previous attempt left there."""
    files = find_raw_files(raw_dir)
    headers = {t: _check_header(t, p) for t, p in files.items() if p is not None}
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {INCOMING_SCHEMA}")
    loads = []
    for table, path in files.items():
        if path is None:  # an optional file that is absent: its table exists, empty
            con.execute(create_table_sql(table, INCOMING_SCHEMA))
            loads.append(RawLoad(table, None, 0))
            continue
        try:
            con.execute(f"CREATE OR REPLACE TABLE {INCOMING_SCHEMA}.{table} AS "
                        + _select_sql(table, path, headers[table]))
        except duckdb.Error as exc:
            raise RawInputError(_encoding_error(path) or f"{path.name}: could not be read: {exc}") from exc
        _to_whole_numbers(con, table, path)
        _check_finite(con, table, path)
        n_rows = con.execute(f"SELECT count(*) FROM {INCOMING_SCHEMA}.{table}").fetchone()[0]
        if n_rows == 0 and table not in OPTIONAL_TABLES:
            raise RawInputError(f"{path.name}: has no data rows.")
        loads.append(RawLoad(table, path, n_rows))
    return loads


def promote_incoming(con: duckdb.DuckDBPyConnection) -> None:
    """Replace the `raw` tables by the validated incoming ones, all or nothing."""
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        for table in RAW_COLUMNS:
            con.execute(f"CREATE OR REPLACE TABLE {RAW_SCHEMA}.{table} AS "
                        f"SELECT * FROM {INCOMING_SCHEMA}.{table}")
        con.execute(f"DROP SCHEMA {INCOMING_SCHEMA} CASCADE")
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise


def discard_incoming(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")


@contextmanager
def incoming_as_raw(warehouse_path: str | Path) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only view of the incoming tables under their final names (`raw.<table>`).

    Validation suites refer to `raw.*` (also across tables); this lets them check the new files
    before `promote_incoming` makes them the real `raw` tables.
    """
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH {sql_string(Path(warehouse_path).as_posix())} AS warehouse (READ_ONLY)")
        con.execute(f"CREATE SCHEMA {RAW_SCHEMA}")
        for table in RAW_COLUMNS:
            con.execute(f"CREATE VIEW {RAW_SCHEMA}.{table} AS SELECT * FROM warehouse.{INCOMING_SCHEMA}.{table}")
        yield con
    finally:
        con.close()
