"""Run a table's suite with Great Expectations (pandas data source) and build Data Docs.

GX 1.x's SQL data source does not support DuckDB, so the table is read through a READ-ONLY
DuckDB connection into a pandas DataFrame (opened, fetched, closed) and validated through an
ephemeral GX context with a pandas data source (``add_dataframe_asset`` +
``add_batch_definition_whole_dataframe``, ``batch_parameters={"dataframe": df}``).

When ``data_docs_dir`` is given, the context persists suites and validation results as JSON under
``data_docs_dir/.gx/`` (filesystem stores) and a checkpoint with ``UpdateDataDocsAction`` renders
the local Data Docs site into ``data_docs_dir`` (``index.html``; :mod:`.offline_docs` points its pages at local
copies of the scripts GX loads from CDNs). Persisting the results is what
lets the index list every table's latest runs; only the last ``keep_results`` runs per suite are
kept. Without ``data_docs_dir`` everything stays in memory.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
import time
from pathlib import Path
from typing import Any, Union

import duckdb
import great_expectations as gx
import pandas as pd
from great_expectations.checkpoint import UpdateDataDocsAction
from great_expectations.core.run_identifier import RunIdentifier
from great_expectations.data_context.types.base import DataContextConfig, ProgressBarsConfig

from .failures import failure_from_result, unresolved_failure
from .offline_docs import localise_site
from .outcome import SEVERITY_ERROR, ValidationOutcome, jsonable
from .suites import SUITES, SuiteDefinition

log = logging.getLogger(__name__)

# GX logs hundreds of INFO lines per context (docs decorators, registry); keep it to warnings
# unless the application configured the "great_expectations" logger itself.
_gx_log = logging.getLogger("great_expectations")
if _gx_log.level == logging.NOTSET:
    _gx_log.setLevel(logging.WARNING)

Warehouse = Union[str, os.PathLike, duckdb.DuckDBPyConnection]

SITE_NAME = "local_site"
STORE_SUBDIR = ".gx"  # under data_docs_dir: persisted suites + validation results (JSON)
PARTIAL_UNEXPECTED_COUNT = 20  # unexpected values kept per expectation in the GX result / data docs
DEFAULT_KEEP_RESULTS = 20


class TableNotFoundError(LookupError):
    """The table to validate (or a table its suite reads reference values from) does not exist."""


def validate_table(
    warehouse_path: Warehouse,
    table: str,
    *,
    data_docs_dir: Path | str | None = None,
    keep_results: int = DEFAULT_KEEP_RESULTS,
    parameters: dict[str, Any] | None = None,
) -> ValidationOutcome:
    """Validate ``table`` (a key of :data:`expectations.suites.SUITES`) in the DuckDB warehouse.

    warehouse_path: path of the DuckDB file (opened READ-ONLY and closed again), or an already
        open ``duckdb`` connection (used as is, not closed: DuckDB refuses a read-only connection
        to a file that the same process already holds open read-write).
    data_docs_dir: where to write the GX Data Docs site (``index.html``); None = no docs.
    keep_results: validation runs kept per suite in the docs' result store.
    parameters: suite parameter functions replacing the suite's own of the same name (e.g. a run's thresholds,
        :meth:`expectations.guards.GuardThresholds.parameter_functions`); other names are ignored.

    Returns a :class:`ValidationOutcome`; ``success`` is False iff a blocking (severity
    ``error``) expectation failed. Raises :class:`TableNotFoundError` if the table or one of its
    reference tables is missing and ``KeyError`` for an unknown table name.
    """
    if table not in SUITES:
        raise KeyError(f"no suite for table {table!r}; known: {sorted(SUITES)}")
    spec = SUITES[table]
    t0 = time.perf_counter()

    if parameters:
        spec = dataclasses.replace(spec, parameters={k: parameters.get(k, f) for k, f in spec.parameters.items()})
    df, parameters, parameter_errors = _load(warehouse_path, spec)

    # Expectations whose suite parameter could not be computed are reported as failures
    # (GX would otherwise abort the whole validation with SuiteParameterError).
    expectations, unresolved = [], []
    for expectation in spec.build():
        missing = [p for p in _parameter_names(expectation) if p in parameter_errors]
        if missing:
            unresolved.append(unresolved_failure(expectation, {p: parameter_errors[p] for p in missing}))
        else:
            expectations.append(expectation)

    docs_dir = Path(data_docs_dir).resolve() if data_docs_dir is not None else None
    context = _make_context(docs_dir)
    suite = gx.ExpectationSuite(
        name=spec.suite_name,
        expectations=expectations,
        meta={"table": spec.table, "notes": "Generated from expectations/suites.py; do not edit."},
    )
    suite = context.suites.add_or_update(suite)
    batch_definition = (
        context.data_sources.add_pandas("warehouse")
        .add_dataframe_asset(name=spec.table)
        .add_batch_definition_whole_dataframe("whole_table")
    )
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{spec.table}__validation", data=batch_definition, suite=suite)
    )
    actions = [UpdateDataDocsAction(name="update_data_docs", site_names=[SITE_NAME])] if docs_dir else []
    result_format: dict[str, Any] = {"result_format": "SUMMARY", "partial_unexpected_count": PARTIAL_UNEXPECTED_COUNT}
    key_columns = [c for c in spec.key_columns if c in df.columns]
    if key_columns and len(key_columns) == len(spec.key_columns):
        result_format["unexpected_index_column_names"] = key_columns
    checkpoint = context.checkpoints.add(
        gx.Checkpoint(
            name=f"{spec.table}__checkpoint",
            validation_definitions=[validation],
            actions=actions,
            result_format=result_format,
        )
    )
    if docs_dir:
        _prune_results(context, spec.suite_name, keep=max(keep_results - 1, 0))

    run_time = dt.datetime.now(dt.timezone.utc)
    result = checkpoint.run(
        batch_parameters={"dataframe": df},
        expectation_parameters=parameters,
        run_id=RunIdentifier(run_name=spec.table, run_time=run_time),
    )
    suite_result = next(iter(result.run_results.values()))

    index = None
    if docs_dir:
        index = docs_dir / "index.html"
        if not index.exists():  # belt and braces: the action logs (not raises) site build errors
            context.build_data_docs(site_names=[SITE_NAME])
        localise_site(docs_dir)  # GX's pages load their scripts from CDNs: point them at local copies

    return _outcome(spec, suite_result, unresolved, n_rows=len(df), parameters=parameters, run_time=run_time,
                    duration=time.perf_counter() - t0, index=index)


# ------------------------------------------------------------------------------------- loading


Loaded = tuple[pd.DataFrame, dict[str, Any], dict[str, str]]


def _load(warehouse: Warehouse, spec: SuiteDefinition) -> Loaded:
    if isinstance(warehouse, duckdb.DuckDBPyConnection):
        return _fetch(warehouse, spec)
    path = Path(warehouse)
    if not path.exists():
        raise FileNotFoundError(f"DuckDB warehouse not found: {path}")
    con = duckdb.connect(str(path), read_only=True)
    try:
        return _fetch(con, spec)
    finally:
        con.close()


def _fetch(con: duckdb.DuckDBPyConnection, spec: SuiteDefinition) -> Loaded:
    for name in (spec.table, *spec.reference_tables):
        _require_table(con, name)
    ref = _qualified(spec.table)
    present = set(con.sql(f"SELECT * FROM {ref} LIMIT 0").columns)
    helpers = [
        f'{expr} AS "{name}"'
        for name, (expr, sources) in spec.derived_columns.items()
        if set(sources) <= present and name not in present
    ]
    # Window helpers reorder rows: sort by the key so failures sample the same rows, in key order, run after run.
    keys = [f'"{c}"' for c in spec.key_columns if c in present]
    order = f" ORDER BY {', '.join(keys)}" if keys else ""
    rel = con.sql(f"SELECT *{''.join(', ' + h for h in helpers)} FROM {ref}{order}")
    duck_types = {c: str(t) for c, t in zip(rel.columns, rel.types)}
    df = rel.df()
    df = _normalise_dtypes(df, duck_types)
    parameters: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for name, compute in spec.parameters.items():
        try:
            parameters[name] = compute(con)
        except duckdb.Error as exc:  # e.g. a column the query reads is missing
            log.warning("suite parameter %s of %s unavailable: %s", name, spec.table, exc)
            errors[name] = f"{type(exc).__name__}: {str(exc).splitlines()[0]}"
    return df, parameters, errors


def _normalise_dtypes(df: pd.DataFrame, duck_types: dict[str, str]) -> pd.DataFrame:
    """Make dtypes deterministic without hiding the DuckDB type.

    - DATE/TIMESTAMP -> datetime64[ns]: GX's pandas "between" only vectorises ns datetimes
      (other resolutions take a slow per-row path that cannot compare with the bounds).
    - VARCHAR fetched as ``object`` (empty or all-NULL column) -> pandas ``str`` dtype, as a
      non-empty VARCHAR column already is.
    """
    for col, duck_type in duck_types.items():
        if col not in df.columns:
            continue
        s = df[col]
        if duck_type in ("DATE", "TIMESTAMP") and str(s.dtype) != "datetime64[ns]":
            df[col] = s.astype("datetime64[ns]")
        elif duck_type == "VARCHAR" and s.dtype == object:
            df[col] = s.astype("str")
    return df


def _qualified(name: str) -> str:
    return ".".join(f'"{part}"' for part in name.split("."))


def _require_table(con: duckdb.DuckDBPyConnection, name: str) -> None:
    schema, _, table = name.rpartition(".")
    found = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema or "main", table],
    ).fetchall()  # duckdb 2.x: always drain results (fetchone leaves the connection busy)
    if not found or not found[0][0]:
        raise TableNotFoundError(f"table {name} does not exist in the warehouse")


# ------------------------------------------------------------------------------------- context


def _make_context(docs_dir: Path | None):
    in_memory = {"store_backend": {"class_name": "InMemoryStoreBackend"}}

    def fs(sub: str) -> dict[str, Any]:
        assert docs_dir is not None
        return {"store_backend": {"class_name": "TupleFilesystemStoreBackend",
                                  "base_directory": str(docs_dir / STORE_SUBDIR / sub)}}

    persisted = fs if docs_dir else (lambda sub: in_memory)
    stores = {
        "expectations_store": {"class_name": "ExpectationsStore", **persisted("expectations")},
        "validation_results_store": {"class_name": "ValidationResultsStore", **persisted("validations")},
        "checkpoint_store": {"class_name": "CheckpointStore", **in_memory},
        "validation_definition_store": {"class_name": "ValidationDefinitionStore", **in_memory},
    }
    sites = {}
    if docs_dir:
        sites[SITE_NAME] = {
            "class_name": "SiteBuilder",
            "show_how_to_buttons": False,
            "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(docs_dir)},
            "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        }
    config = DataContextConfig(
        stores=stores,
        expectations_store_name="expectations_store",
        validation_results_store_name="validation_results_store",
        checkpoint_store_name="checkpoint_store",
        data_docs_sites=sites,
        analytics_enabled=False,  # GX usage statistics off for this context (not through the environment)
        progress_bars=ProgressBarsConfig(globally=False, metric_calculations=False),
    )
    return gx.get_context(mode="ephemeral", project_config=config)


def _prune_results(context, suite_name: str, keep: int) -> None:
    """Drop all but the newest ``keep`` stored runs of a suite (the site index then drops their pages)."""
    store = context.validation_results_store
    keys = [k for k in store.list_keys() if k.expectation_suite_identifier.name == suite_name]
    keys.sort(key=lambda k: k.run_id.run_time, reverse=True)
    for key in keys[keep:]:
        try:
            store.remove_key(key)
        except Exception as exc:  # another process may have removed it already
            log.debug("could not remove old validation result %s: %s", key, exc)


# ------------------------------------------------------------------------------------- outcome


def _parameter_names(expectation) -> list[str]:
    kwargs = expectation.configuration.kwargs
    return [v["$PARAMETER"] for v in kwargs.values() if isinstance(v, dict) and "$PARAMETER" in v]


def _outcome(spec, suite_result, unresolved, *, n_rows, parameters, run_time, duration, index) -> ValidationOutcome:
    blocking: list[dict[str, Any]] = []
    warnings: list[dict[str, Any]] = []
    failures = [failure_from_result(r) for r in suite_result.results if not r.success] + unresolved
    for failure in failures:
        (blocking if failure["severity"] == SEVERITY_ERROR else warnings).append(failure)
    n_expectations = len(suite_result.results) + len(unresolved)
    return ValidationOutcome(
        table=spec.table,
        suite_name=spec.suite_name,
        success=not blocking,
        blocking_failures=blocking,
        warnings=warnings,
        n_expectations=n_expectations,
        n_rows=n_rows,
        n_failed=len(blocking) + len(warnings),
        run_time=run_time.isoformat(timespec="seconds"),
        duration_s=round(duration, 3),
        data_docs_index=index,
        parameters={k: (f"{len(v)} values" if isinstance(v, list) else jsonable(v)) for k, v in parameters.items()},
    )
