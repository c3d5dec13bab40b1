"""Load Rossmann-layout CSV files into the warehouse's `raw` schema.

Files are first loaded into a side schema (`raw_incoming`) so they can be validated before they replace anything:
`promote_incoming` swaps them into `raw`, together with their rows of `meta.file_loads`, in one transaction; a
failed load or validation leaves the previous `raw` tables and `meta.file_loads` untouched.

Sales arrive as several files: `train.csv` (or `.gz`) and, beside it, any `train_*.csv[.gz]` of new or corrected
days in the same layout. They are merged on (Store, Date) in name order (`train.csv` first): a later file's row
replaces an earlier one for the same key. Each file is read and checked on its own (header, types, whole numbers,
finite values, one value per key: exact duplicate rows count once), then the merged table is what the Great
Expectations suites validate; its rows keep the file they came from (`_source_file`, not promoted) so a failure
names that file.

`raw.sales` is the accumulated merge. A run reads only the sales files that `meta.file_loads` does not list with
the same name and checksum (sha256 of the file's bytes) and merges them into a copy of `raw.sales`. It rebuilds
from all files instead when there is no record yet, when `train.csv` or an already loaded file changed or is gone,
or when a new file sorts before one already loaded (name order decides which value wins). The files that make up
`raw.sales` are the sales rows of `meta.file_loads` since the base file was last loaded (a rebuild logs every file
again).

`store.csv` and `test.csv` replace their tables whole and are read every run (small; the plan's kept days depend
on the history); they are logged when their name or checksum is new. Plan days on or before the last history date
are dropped (counted in `RawLoad.plan_days_dropped`): the forecast origin is always the day after the history.

`meta.file_loads`, one row per loaded file version: file_name, raw_table, checksum, n_rows (data rows in the file),
first_date / last_date (NULL for store.csv), rows_new / rows_corrected / rows_unchanged (for a sales file: against
the merge of the files before it; for store.csv / test.csv: against the previous table; the plan days dropped as
history count in none of them), loaded_at (UTC) and run_id (the Dagster run).
"""

from __future__ import annotations

import codecs
import csv
import dataclasses
import datetime
import gzip
import hashlib
import zlib
from collections.abc import Iterator, Sequence
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
    SALES_DELTA_GLOBS,
    SALES_KEY,
    create_table_sql,
)
from ingestion.sql_text import sql_string

INCOMING_SCHEMA = "raw_incoming"
# The models cast features to float32: a larger magnitude would turn into infinity there.
MAX_ABS_DOUBLE = float(3.4e38)
META_SCHEMA = "meta"
FILE_LOADS = f"{META_SCHEMA}.file_loads"
PENDING_LOADS = f"{INCOMING_SCHEMA}._file_loads"  # this run's rows of meta.file_loads until the promotion
SOURCE_FILE = "_source_file"  # column of raw_incoming.sales: the file each row came from (not promoted)
NEW_FILE = f"{INCOMING_SCHEMA}._new_file"  # one sales file while it is checked and merged
KEYS = {"sales": SALES_KEY, "stores": ("Store",), "plan": SALES_KEY}
FILE_LOAD_COLUMNS = {
    "file_name": "VARCHAR", "raw_table": "VARCHAR", "checksum": "VARCHAR", "n_rows": "BIGINT",
    "first_date": "DATE", "last_date": "DATE", "rows_new": "BIGINT", "rows_corrected": "BIGINT",
    "rows_unchanged": "BIGINT", "loaded_at": "TIMESTAMP", "run_id": "VARCHAR",
}
MAX_SAMPLES = 5
INTEGER_MAX = 2**31 - 1  # the layout's INTEGER columns are 32-bit
GZIP_ERRORS = (EOFError, gzip.BadGzipFile, zlib.error)  # what a truncated or corrupt .gz raises when read


class RawInputError(ValueError):
    """The raw input folder or one of its files is not in the expected Rossmann layout."""


@dataclass(frozen=True)
class FileLoad:
    """One file version read into the side schema: its future row of meta.file_loads (without time and run)."""

    file_name: str
    raw_table: str
    checksum: str
    n_rows: int
    first_date: datetime.date | None
    last_date: datetime.date | None
    rows_new: int
    rows_corrected: int
    rows_unchanged: int


@dataclass(frozen=True)
class RawLoad:
    """What a run loads into one raw table. ``n_rows``: the table's rows after the load; ``rows_*``: against the
    previous ``raw`` table (``rows_removed``: its keys that are gone, after a rebuild without a file)."""

    table: str
    source_file: Path | None
    n_rows: int
    files_loaded: tuple[FileLoad, ...] = ()
    files_skipped: tuple[str, ...] = ()  # already in meta.file_loads with the same checksum
    source_files: tuple[Path, ...] = ()  # every file the table is made of
    rebuild_reason: str | None = None  # sales: why every file was read again (None: only new files)
    rows_new: int = 0
    rows_corrected: int = 0
    rows_removed: int = 0
    plan_days_dropped: int = 0  # plan: days on or before the last history date


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


def _gzip_error(path: Path) -> str | None:
    """Why a ``.gz`` file cannot be decompressed to its end (truncated or corrupt) and how far it can; None when it
    can (or it is no ``.gz``). Streams the file, so it is only run to explain a failed read."""
    if path.suffix != ".gz":
        return None
    size = lines = 0
    try:
        with gzip.open(path, "rb") as fh:
            while chunk := fh.read1(1 << 16):  # read1: what decompresses before the break counts too
                size += len(chunk)
                lines += chunk.count(b"\n")
    except GZIP_ERRORS as exc:
        return (f"{path.name}: the gzip data is truncated or corrupt ({exc}) after {size:,} uncompressed bytes "
                f"(about {lines:,} lines); copy the file again.")
    return None


def _encoding_error(path: Path, chunk_size: int = 1 << 22) -> str | None:
    """Where `path` stops being UTF-8 (an optional BOM is UTF-8 too): a message with byte offset, line, column and
    value, or None.

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
                return (f"{path.name} is not UTF-8: byte {bad[:1]!r} at byte offset {at} (line {line}), "
                        f"{_place_of_byte(path, line, at)}. Save it as UTF-8 (with or without BOM); latin-1 / "
                        "Windows-1252 exports need converting.")
            if not chunk:
                return None
            offset += len(chunk)
            lines += chunk.count(b"\n")


def _place_of_byte(path: Path, line: int, offset: int) -> str:
    """The CSV column and value holding the byte at ``offset`` on ``line`` (1-based; line 1 is the header)."""
    if line == 1:
        return "in the header"
    with _open_binary(path) as fh:
        header = next(csv.reader([fh.readline().decode("utf-8-sig", errors="replace")]), [])
        for _ in range(line - 2):
            fh.readline()
        start = fh.tell()
        text = fh.readline(1 << 20)
    try:
        # latin-1 maps every byte to one character, so the fields before the byte count as they are in the file
        n_fields = len(next(csv.reader([text[:offset - start].decode("latin-1")]), [""]))
        fields = next(csv.reader([text.decode("utf-8", errors="backslashreplace").rstrip("\r\n")]), [])
    except csv.Error:  # e.g. a field longer than the csv module allows: the offset and line say where
        return "in a line that is not CSV text"
    column = header[n_fields - 1] if 0 < n_fields <= len(header) else f"field {n_fields}"
    value = fields[n_fields - 1] if 0 < n_fields <= len(fields) else ""
    return f"column {column}, value '{value}'"


def _ragged_line(path: Path) -> str | None:
    """The first line whose number of fields differs from the header's (a stray comma, a line cut short), or None.
    Streams the file, so it is only run to explain a failed read."""
    with _open_binary(path) as fh:
        rows = csv.reader(codecs.iterdecode(fh, "utf-8-sig"))
        try:
            header = next(rows, [])
            for row in rows:
                if row and len(row) != len(header):
                    return (f"{path.name}: line {rows.line_num} has {len(row)} fields where the header has "
                            f"{len(header)}: '{','.join(row)}'")
        except csv.Error as exc:  # e.g. a field longer than the csv module allows (binary data)
            return f"{path.name}: line {rows.line_num} is not CSV text ({exc})"
    return None


def _read_error(path: Path, exc: duckdb.Error) -> str:
    """Why DuckDB could not read ``path``, in the file's terms where we can tell (a truncated gzip, a byte that is
    not UTF-8, a line with too many or too few fields), else the first paragraph of DuckDB's message (it names the
    line, the column and the value that does not convert; the rest is advice on read_csv options)."""
    reason = _gzip_error(path) or _encoding_error(path) or _ragged_line(path)
    return reason or f"{path.name}: could not be read: {str(exc).split(chr(10) * 2)[0].strip()}"


def _header(path: Path) -> list[str]:
    try:
        with _open_binary(path) as fh:
            raw = fh.readline()
    except GZIP_ERRORS as exc:
        raise RawInputError(_gzip_error(path) or f"{path.name}: {exc}") from exc
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


def _check_finite(con: duckdb.DuckDBPyConnection, table: str, path: Path, target: str) -> None:
    """Refuse inf / nan (DuckDB reads them as DOUBLEs) and magnitudes that are infinite in float32, per column."""
    for column in (c for c, t in RAW_COLUMNS[table].items() if t == "DOUBLE"):
        bad = con.execute(
            f'SELECT count(*), list("Store" ORDER BY "Store")[1:{MAX_SAMPLES}], '
            f'list("{column}" ORDER BY "Store")[1:{MAX_SAMPLES}] FROM {target} '
            f'WHERE NOT isfinite("{column}") OR abs("{column}") > {MAX_ABS_DOUBLE}').fetchone()
        if bad[0]:
            samples = ", ".join(f"Store {s}: {v}" for s, v in zip(bad[1], bad[2]))
            raise RawInputError(f"{path.name}: column {column} has {bad[0]} value(s) that are not finite numbers "
                                f"(inf, nan or beyond {MAX_ABS_DOUBLE:g}), e.g. {samples}; leave unknown values blank.")


def _file_type(sql_type: str) -> str:
    # read_csv rounds 5263.7 into an INTEGER column silently: read whole-number columns as DOUBLE, check, then cast
    return "DOUBLE" if sql_type == "INTEGER" else sql_type


def _to_whole_numbers(con: duckdb.DuckDBPyConnection, table: str, path: Path, target: str) -> None:
    """Give the file's integer columns their layout type, refusing values with a fraction, nan, inf and values
    beyond the INTEGER range (the cast would fail without saying which rows)."""
    keys = [k for k in ("Store", "Date") if k in RAW_COLUMNS[table]]
    for column in (c for c, t in RAW_COLUMNS[table].items() if t == "INTEGER"):
        selected = ", ".join(f'"{c}"' for c in [*keys, column])
        # NULLs (blank fields) pass: the not-null expectations name them
        rel = con.sql(f'SELECT {selected} FROM {target} WHERE NOT isfinite("{column}") '
                      f'OR "{column}" <> round("{column}") OR abs("{column}") > {INTEGER_MAX} ORDER BY ALL')
        bad = rel.limit(MAX_SAMPLES).fetchall()
        if bad:
            n = con.execute(f"SELECT count(*) FROM ({rel.sql_query()})").fetchall()[0][0]
            samples = "; ".join(", ".join(f"{c}={v}" for c, v in zip([*keys, column], row)) for row in bad)
            raise RawInputError(f"{path.name}: column {column} must hold whole numbers (at most {INTEGER_MAX:,}); "
                                f"{n} row(s) do not, e.g. {samples}")
        try:
            con.execute(f'ALTER TABLE {target} ALTER "{column}" TYPE INTEGER')
        except duckdb.Error as exc:  # whatever the check above did not foresee
            raise RawInputError(f"{path.name}: column {column}: {exc}") from exc


def _read_file(con: duckdb.DuckDBPyConnection, table: str, path: Path, target: str) -> int:
    """``path`` as table ``target`` in the layout of ``table``, checked (types, whole numbers, finite); its rows."""
    try:
        con.execute(f"CREATE OR REPLACE TABLE {target} AS " + _select_sql(table, path, _check_header(table, path)))
    except duckdb.Error as exc:
        raise RawInputError(_read_error(path, exc)) from exc
    _to_whole_numbers(con, table, path, target)
    _check_finite(con, table, path, target)
    return _scalar(con, f"SELECT count(*) FROM {target}")


def _scalar(con: duckdb.DuckDBPyConnection, sql: str, params: Sequence | None = None):
    rows = con.execute(sql, params or []).fetchall()  # duckdb 2.x: drain results
    return rows[0][0] if rows else None


def _table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    return bool(_scalar(con, "SELECT count(*) FROM duckdb_tables() WHERE database_name = current_database() "
                             "AND schema_name = ? AND table_name = ?", [schema, table]))


def _column_list(table: str) -> str:
    """The layout's columns of ``table``, quoted: what is promoted and validated (not the helper _source_file)."""
    return ", ".join(f'"{c}"' for c in RAW_COLUMNS[table])


def _values(table: str) -> list[str]:
    return [c for c in RAW_COLUMNS[table] if c not in KEYS[table]]


def file_checksum(path: Path) -> str:
    """sha256 of the file's bytes (of the compressed bytes for .gz): with the name, what identifies a loaded file."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


def find_sales_files(raw_dir: Path) -> list[Path]:
    """The sales files of ``raw_dir`` in merge order: ``train.csv[.gz]``, then every ``train_*.csv[.gz]`` by name."""
    base = find_raw_files(raw_dir)["sales"]
    deltas = {p for pattern in SALES_DELTA_GLOBS for p in Path(raw_dir).glob(pattern) if p.is_file()}
    return [base, *sorted(deltas, key=lambda p: p.name)]


def _collapse_duplicates(con: duckdb.DuckDBPyConnection, path: Path, target: str) -> None:
    """One row per (Store, Date) in a sales file: exact repeats count once, differing values are refused."""
    keys = ", ".join(f'"{k}"' for k in SALES_KEY)
    values = _values("sales")
    version = "struct_pack(" + ", ".join(f'"{c}"' for c in values) + ")"
    rel = con.sql(f"SELECT {keys}, list(DISTINCT {version} ORDER BY {version}) AS versions FROM {target} "
                  f"GROUP BY ALL HAVING count(DISTINCT {version}) > 1 ORDER BY ALL")
    clashes = rel.limit(MAX_SAMPLES).fetchall()
    if clashes:
        n = _scalar(con, f"SELECT count(*) FROM ({rel.sql_query()})")
        samples = []
        for store, date, versions in clashes:  # a few sample keys, for the message
            differing = [c for c in values if len({str(v[c]) for v in versions}) > 1]
            shown = " vs ".join(", ".join(f"{c}={v[c]}" for c in differing) for v in versions)
            samples.append(f"Store={store}, Date={date}: {shown}")
        columns = sorted({c for s in samples for c in values if f"{c}=" in s.split(": ", 1)[1]}, key=values.index)
        raise RawInputError(f"{path.name}: {n} (Store, Date) key(s) appear more than once with different values "
                            f"(column {', '.join(columns)}), e.g. {'; '.join(samples)}. One row per store and day "
                            "in a file; a later train_*.csv corrects an earlier one.")
    con.execute(f"CREATE OR REPLACE TABLE {target} AS SELECT DISTINCT * FROM {target}")


def _diff(con: duckdb.DuckDBPyConnection, table: str, new: str, old: str) -> tuple[int, int, int]:
    """Rows of ``new`` whose key ``old`` lacks, has with other values, has with the same values."""
    on = " AND ".join(f'n."{k}" = o."{k}"' for k in KEYS[table])
    differs = " OR ".join(f'n."{c}" IS DISTINCT FROM o."{c}"' for c in _values(table))
    found = f'o."{KEYS[table][0]}" IS NOT NULL'
    return tuple(con.execute(
        f"SELECT count(*) FILTER (WHERE NOT {found}), count(*) FILTER (WHERE {found} AND ({differs})), "
        f"count(*) FILTER (WHERE {found} AND NOT ({differs})) FROM {new} n LEFT JOIN {old} o ON {on}").fetchall()[0])


def _date_range(con: duckdb.DuckDBPyConnection, table: str, target: str) -> tuple:
    if "Date" not in RAW_COLUMNS[table]:
        return None, None
    return tuple(con.execute(f'SELECT min("Date"), max("Date") FROM {target}').fetchall()[0])


def _loaded_sales_files(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """The files ``raw.sales`` is made of (name -> checksum): the sales rows of meta.file_loads since the base file
    was last loaded (a rebuild logs every file again, so older rows are superseded)."""
    if not _table_exists(con, META_SCHEMA, "file_loads"):
        return {}
    bases = list(RAW_FILES["sales"])
    rows = con.execute(
        f"SELECT file_name, arg_max(checksum, loaded_at) FROM {FILE_LOADS} WHERE raw_table = 'sales' AND loaded_at "
        f">= (SELECT max(loaded_at) FROM {FILE_LOADS} WHERE raw_table = 'sales' AND list_contains(?, file_name)) "
        "GROUP BY file_name ORDER BY file_name", [bases]).fetchall()
    return dict(rows)


def _rebuild_reason(con: duckdb.DuckDBPyConnection, files: list[Path], checksums: dict[str, str],
                    loaded: dict[str, str]) -> str | None:
    """Why the new files cannot simply be merged into ``raw.sales`` (None: they can)."""
    base = files[0].name
    if not _table_exists(con, RAW_SCHEMA, "sales") or not loaded:
        return "first load (no record of loaded sales files)"
    if loaded.get(base) != checksums[base]:
        return f"{base} is new or changed"
    for name, checksum in loaded.items():
        if name not in checksums:
            return f"{name} was loaded before and is gone"
        if checksum != checksums[name]:
            return f"{name} changed since it was loaded"
    last_loaded = max((n for n in loaded if n != base), default=None)
    early = [n for n in checksums if n not in loaded and last_loaded is not None and n < last_loaded]
    if early:
        return f"{early[0]} sorts before {last_loaded}, which is already loaded (name order decides which row wins)"
    return None


def _record(con: duckdb.DuckDBPyConnection, load: FileLoad) -> None:
    con.execute(f"INSERT INTO {PENDING_LOADS} VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [load.file_name, load.raw_table, load.checksum, load.n_rows, load.first_date, load.last_date,
                 load.rows_new, load.rows_corrected, load.rows_unchanged])


def _already_loaded(con: duckdb.DuckDBPyConnection, table: str, name: str, checksum: str) -> bool:
    return _table_exists(con, META_SCHEMA, "file_loads") and bool(_scalar(
        con, f"SELECT count(*) FROM {FILE_LOADS} WHERE raw_table = ? AND file_name = ? AND checksum = ?",
        [table, name, checksum]))


def _load_sales(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> RawLoad:
    """Merge the sales files into ``raw_incoming.sales``: the new ones into a copy of raw.sales, or all of them."""
    files = find_sales_files(raw_dir)
    checksums = {p.name: file_checksum(p) for p in files}
    loaded = _loaded_sales_files(con)
    reason = _rebuild_reason(con, files, checksums, loaded)
    merged = f"{INCOMING_SCHEMA}.sales"
    if reason:
        con.execute(create_table_sql("sales", INCOMING_SCHEMA))
        con.execute(f'ALTER TABLE {merged} ADD COLUMN "{SOURCE_FILE}" VARCHAR')
        to_read = files
    else:  # rows loaded by earlier runs: their file is no longer known per row
        con.execute(f'CREATE OR REPLACE TABLE {merged} AS SELECT *, NULL::VARCHAR AS "{SOURCE_FILE}" '
                    f"FROM {RAW_SCHEMA}.sales")
        to_read = [p for p in files if p.name not in loaded]
    for path in to_read:
        _check_header("sales", path)  # every header before any data: a wrong file fails fast
    on = " AND ".join(f'm."{k}" = n."{k}"' for k in SALES_KEY)
    file_loads = []
    for path in to_read:
        n_rows = _read_file(con, "sales", path, NEW_FILE)
        if n_rows == 0 and path == files[0]:
            raise RawInputError(f"{path.name}: has no data rows.")
        _collapse_duplicates(con, path, NEW_FILE)
        new, corrected, unchanged = _diff(con, "sales", NEW_FILE, merged)
        con.execute(f"DELETE FROM {merged} m USING {NEW_FILE} n WHERE {on}")
        con.execute(f"INSERT INTO {merged} BY NAME SELECT *, ? AS \"{SOURCE_FILE}\" FROM {NEW_FILE}", [path.name])
        file_loads.append(FileLoad(path.name, "sales", checksums[path.name], n_rows,
                                   *_date_range(con, "sales", NEW_FILE), new, corrected, unchanged))
    con.execute(f"DROP TABLE IF EXISTS {NEW_FILE}")
    for load in file_loads:
        _record(con, load)
    return _table_load(con, "sales", files[0], file_loads, rebuild_reason=reason, source_files=tuple(files),
                       files_skipped=tuple(p.name for p in files if p not in to_read))


def _table_load(con: duckdb.DuckDBPyConnection, table: str, path: Path | None, file_loads: list[FileLoad],
                **fields) -> RawLoad:
    incoming = f"{INCOMING_SCHEMA}.{table}"
    if _table_exists(con, RAW_SCHEMA, table):
        new, corrected, unchanged = _diff(con, table, incoming, f"{RAW_SCHEMA}.{table}")
        n_previous = _scalar(con, f"SELECT count(*) FROM {RAW_SCHEMA}.{table}")
    else:  # the first load
        new, corrected, unchanged, n_previous = _scalar(con, f"SELECT count(*) FROM {incoming}"), 0, 0, 0
    n_rows = new + corrected + unchanged
    return RawLoad(table, path, n_rows, files_loaded=tuple(file_loads), rows_new=new, rows_corrected=corrected,
                   rows_removed=n_previous - corrected - unchanged, **fields)


def _load_whole(con: duckdb.DuckDBPyConnection, table: str, path: Path | None) -> tuple[int, str | None]:
    """A table read whole from its file (an absent optional file: empty); the file's rows and checksum."""
    target = f"{INCOMING_SCHEMA}.{table}"
    if path is None:
        con.execute(create_table_sql(table, INCOMING_SCHEMA))
        return 0, None
    n_rows = _read_file(con, table, path, target)
    if n_rows == 0 and table not in OPTIONAL_TABLES:
        raise RawInputError(f"{path.name}: has no data rows.")
    return n_rows, file_checksum(path)


def load_incoming(con: duckdb.DuckDBPyConnection, raw_dir: Path) -> list[RawLoad]:
    """Load the raw files into `raw_incoming.<table>` (replacing what a previous attempt left there), the sales
    files merged, the plan without the days that are already history; this run's meta.file_loads rows wait in
    `raw_incoming._file_loads` for :func:`promote_incoming`."""
    files = find_raw_files(raw_dir)
    for table, path in files.items():
        if path is not None and table != "sales":
            _check_header(table, path)
    con.execute(f"DROP SCHEMA IF EXISTS {INCOMING_SCHEMA} CASCADE")
    con.execute(f"CREATE SCHEMA {INCOMING_SCHEMA}")
    con.execute(f"CREATE TABLE {PENDING_LOADS} ("
                + ", ".join(f"{c} {t}" for c, t in FILE_LOAD_COLUMNS.items() if c not in ("loaded_at", "run_id"))
                + ")")
    try:
        return [_load_sales(con, raw_dir), *(_load_table(con, table, files[table]) for table in ("stores", "plan"))]
    except Exception:
        discard_incoming(con)  # a bad file leaves nothing behind
        raise


def _load_table(con: duckdb.DuckDBPyConnection, table: str, path: Path | None) -> RawLoad:
    """store.csv or test.csv, whole, into its incoming table; the plan without the days already history."""
    n_file, checksum = _load_whole(con, table, path)
    first, last = _date_range(con, table, f"{INCOMING_SCHEMA}.{table}")
    dropped = 0
    if table == "plan":  # the origin is the day after the history: plan days already history go
        last_history = f'(SELECT max("Date") FROM {INCOMING_SCHEMA}.sales)'
        dropped = _scalar(con, f'SELECT count(*) FROM {INCOMING_SCHEMA}.plan WHERE "Date" <= {last_history}')
        con.execute(f'DELETE FROM {INCOMING_SCHEMA}.plan WHERE "Date" <= {last_history}')
    load = _table_load(con, table, path, [], plan_days_dropped=dropped,
                       source_files=(path,) if path else ())
    if path is not None:
        file_load = FileLoad(path.name, table, checksum, n_file, first, last, load.rows_new,
                             load.rows_corrected, load.n_rows - load.rows_new - load.rows_corrected)
        if _already_loaded(con, table, path.name, checksum):
            load = dataclasses.replace(load, files_skipped=(path.name,))
        else:
            _record(con, file_load)
            load = dataclasses.replace(load, files_loaded=(file_load,))
    return load


def incoming_row_files(con: duckdb.DuckDBPyConnection, table: str, rows: Sequence[dict]) -> list[str | None]:
    """The file each of a few incoming rows (dicts with the table's key columns, e.g. a failure's sample rows)
    came from; None where unknown (rows of raw.sales loaded by an earlier run, or no key)."""
    if table != "sales":
        return [None] * len(rows)
    found = []
    for row in rows:
        if row.get("Store") is None or row.get("Date") is None:
            found.append(None)
            continue
        found.append(_scalar(con, f'SELECT "{SOURCE_FILE}" FROM {INCOMING_SCHEMA}.sales '
                                  'WHERE "Store" = ? AND "Date" = CAST(left(?, 10) AS DATE)',
                             [int(row["Store"]), str(row["Date"])]))
    return found


def promote_incoming(con: duckdb.DuckDBPyConnection, run_id: str | None = None) -> None:
    """Replace the `raw` tables by the validated incoming ones and log the loaded files in meta.file_loads
    (``run_id``: the Dagster run), all or nothing."""
    loaded_at = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {RAW_SCHEMA}")
        for table in RAW_COLUMNS:
            con.execute(f"CREATE OR REPLACE TABLE {RAW_SCHEMA}.{table} AS "
                        f"SELECT {_column_list(table)} FROM {INCOMING_SCHEMA}.{table}")
        con.execute(f"CREATE SCHEMA IF NOT EXISTS {META_SCHEMA}")
        con.execute(f"CREATE TABLE IF NOT EXISTS {FILE_LOADS} ("
                    + ", ".join(f"{c} {t}" for c, t in FILE_LOAD_COLUMNS.items()) + ")")
        if _table_exists(con, INCOMING_SCHEMA, "_file_loads"):
            con.execute(f"INSERT INTO {FILE_LOADS} SELECT *, ?, ? FROM {PENDING_LOADS}", [loaded_at, run_id])
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
            con.execute(f"CREATE VIEW {RAW_SCHEMA}.{table} AS SELECT {_column_list(table)} "
                        f"FROM warehouse.{INCOMING_SCHEMA}.{table}")
        yield con
    finally:
        con.close()
