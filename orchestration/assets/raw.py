"""Raw loads: the Rossmann-layout files into schema `raw`, validated before they replace anything.

Sales files arrive over time (`train.csv`, then `train_*.csv[.gz]` of new or corrected days): only the files that
meta.file_loads does not list with the same checksum are read and merged (ingestion/load.py); the metadata says
which files were loaded or skipped, how many rows are new or corrected, and how many plan days were dropped because
they are already history."""

import dataclasses
import datetime
import functools

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    Failure,
    MaterializeResult,
    MetadataValue,
    multi_asset,
)

from expectations import failure_report, validate_incoming
from expectations.report import failure_lines
from ingestion import synthetic
from ingestion.load import RawLoad, discard_incoming, incoming_row_files, load_incoming, promote_incoming
from orchestration.assets.metadata import DATA_ENGINEERING, ROW_COUNT
from orchestration.assets.guards import GuardSettings
from orchestration.resources import DuckDBWarehouse, PlatformPaths, TrainingSettings

GX_CHECK = "great_expectations"
RAW_TABLE_DESCRIPTIONS = {
    "sales": "Daily sales history per store, as in Kaggle's train.csv.",
    "stores": "One row per store (type, assortment, competition, Promo2), as in store.csv.",
    "plan": "The forecast plan (test.csv layout): known future calendar per store-day; empty without test.csv.",
}


def raw_key(table: str) -> AssetKey:
    return AssetKey(["raw", table])


def ensure_default_data(paths: PlatformPaths) -> None:
    """Write the embedded synthetic dataset once; it is deterministic, so a rerun would write the same bytes."""
    if not (paths.input_dir / "train.csv").exists():
        synthetic.generate_dataset(paths.input_dir)


@multi_asset(
    name="raw_tables",
    specs=[
        AssetSpec(raw_key(t), description=d, group_name="raw", kinds={"duckdb"}, owners=DATA_ENGINEERING)
        for t, d in RAW_TABLE_DESCRIPTIONS.items()
    ],
    check_specs=[
        AssetCheckSpec(GX_CHECK, asset=raw_key(t), blocking=True,
                       description=f"Great Expectations suite for raw.{t}")
        for t in RAW_TABLE_DESCRIPTIONS
    ],
)
def raw_tables(context: AssetExecutionContext, paths: PlatformPaths, warehouse: DuckDBWarehouse,
               guards: GuardSettings, training: TrainingSettings):
    """Load the input files, validate them, and only then swap them into `raw` in one transaction."""
    if paths.uses_default_data:
        ensure_default_data(paths)
    context.log.info(f"Loading raw files from {paths.input_dir}")
    with warehouse.connect() as con:
        loads = {load.table: load for load in load_incoming(con, paths.input_dir)}
    for load in loads.values():
        context.log.info(load_summary(load))

    outcomes = validate_incoming(warehouse.active_path, data_docs_dir=paths.reports_dir / "data_docs",
                                 thresholds=guards.raw_thresholds(training.horizon_days))
    checks = [
        AssetCheckResult(
            asset_key=raw_key(table),
            check_name=GX_CHECK,
            passed=outcome.success,
            severity=AssetCheckSeverity.ERROR,
            metadata={
                "expectations": outcome.n_expectations,
                "rows": outcome.n_rows,
                "blocking_failures": len(outcome.blocking_failures),
                "warnings": len(outcome.warnings),
                "summary": MetadataValue.md(outcome.summary_markdown()),
            },
        )
        for table, outcome in outcomes.items()
    ]
    failed = [table for table, outcome in outcomes.items() if not outcome.success]
    sources = {table: load.source_file for table, load in loads.items()}
    with warehouse.connect() as con:
        # What `make run` and `dagster asset materialize` print: file, column, rule, samples (the file each sample
        # row came from, for sales merged from several files), for the non-blocking rules that failed too.
        row_files = functools.partial(incoming_row_files, con)
        warned = failure_lines(outcomes, sources, row_files=row_files, warnings=True)
        if failed:
            details = failure_lines(outcomes, sources, row_files=row_files)
            discard_incoming(con)
    if warned:
        context.log.warning(f"Raw data has warnings (non-blocking rules; the run goes on):\n{warned}")
    if failed:
        for check in checks:
            yield check
        raise Failure(
            description=f"Raw data failed validation for {', '.join(failed)}; raw tables left unchanged.\n{details}",
            metadata={"failed_expectations": MetadataValue.md(failure_report(outcomes))},
        )

    with warehouse.connect() as con:
        promote_incoming(con, run_id=context.run_id)
    for table, load in loads.items():
        yield MaterializeResult(asset_key=raw_key(table), metadata=load_metadata(load))
    yield from checks


def load_summary(load: RawLoad) -> str:
    """One log line per raw table: files read and skipped, rows new / corrected, plan days dropped."""
    loaded = ", ".join(f.file_name for f in load.files_loaded) or "none"
    line = (f"raw.{load.table}: {load.n_rows:,} rows; files loaded: {loaded}; skipped as already loaded: "
            f"{len(load.files_skipped)}; rows new {load.rows_new:,}, corrected {load.rows_corrected:,}")
    if load.rebuild_reason:
        line += f"; rebuilt from every file ({load.rebuild_reason})"
    if load.table == "plan":
        line += f"; plan days dropped as already history: {load.plan_days_dropped:,}"
    return line


def load_metadata(load: RawLoad) -> dict:
    metadata = {
        ROW_COUNT: load.n_rows,
        "source_file": ", ".join(str(p) for p in load.source_files) or "(none: no plan file)",
        "table": f"raw.{load.table}",
        "files_loaded": MetadataValue.json([
            {k: v.isoformat() if isinstance(v, datetime.date) else v for k, v in dataclasses.asdict(f).items()}
            for f in load.files_loaded]),
        "files_skipped": MetadataValue.json(list(load.files_skipped)),
        "rows_new": load.rows_new,
        "rows_corrected": load.rows_corrected,
        "rows_removed": load.rows_removed,
    }
    if load.table == "sales":
        metadata["rebuilt"] = load.rebuild_reason or "no: only new files merged"
    if load.table == "plan":
        metadata["plan_days_dropped"] = load.plan_days_dropped
    return metadata
