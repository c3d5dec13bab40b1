"""`make run`: the `forecast_pipeline` job in process on the persistent Dagster instance (so the run shows in
`make dev`'s UI), a progress line per step, then the summary of the tables.

Dagster's own events and messages show with ``LOG_LEVEL=DEBUG``; the default ``INFO`` shows the platform's
progress lines and Dagster's warnings only.  What the steps write to stdout (dbt's log of every model and test, about 800
lines) goes to ``DATA_DIR/logs/run-<time>.log``; the Dagster UI shows it per step too.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import warnings
from datetime import datetime, timezone

import duckdb
from dagster import BetaWarning, DagsterEventType, DagsterInstance

from monitoring.metrics import TEXTFILE, write_pipeline_textfile
from orchestration.assets.metadata import ROW_COUNT

from orchestration.definitions import defs
from orchestration.summary import print_summary
from settings import Settings, configure_logging

log = logging.getLogger(__name__)


def _step_line(step: str, seconds: float, metadata: dict, n_assets: int) -> str:
    rows = next((v.value for k, v in metadata.items()
                 if k in ("rows", "rows_written", "dagster/row_count", "forecast_rows")), None)
    metric = next((f"{k}={v.value:.4f}" for k, v in metadata.items()
                   if k in ("validation_rmspe", "mean_backtest_rmspe") and isinstance(v.value, float)), "")
    if "decision" in metadata:  # a model step: refit or forecast-only
        metric = f"{metadata['decision'].value:<13} {metric}"
    rows_text = f"{rows:>10,} rows" if isinstance(rows, int) else " " * 15
    assets = f"{n_assets} assets (first: {rows_text.strip()})" if n_assets > 1 else rows_text
    return f"  {step:<34} {seconds:>7.1f}s  {assets}  {metric}".rstrip()


STEP_CODE_ERROR = "DagsterExecutionStepExecutionError"  # Dagster's wrapper of what a step's own code raised
CHECK_FAILED_ERROR = "DagsterAssetCheckFailedError"  # a blocking check failed: its message names only the check


def failure_message(events) -> str | None:
    """The first failed step's error (what its code raised, e.g. the loader's message naming file, column and
    samples, not Dagster's "Error occurred while executing op" around it; for a failed blocking check, the check's
    own description too); failing that, the run's own (e.g. a resource that refused to start: another run holds
    DATA_DIR), its innermost cause, without Dagster's wrapper."""
    step = next((e for e in events if e.event_type == DagsterEventType.STEP_FAILURE), None)
    if step is not None:
        error = step.event_specific_data.error
        while error.cls_name == STEP_CODE_ERROR and error.cause is not None:
            error = error.cause
        reasons = [e.event_specific_data.description for e in events
                   if error.cls_name == CHECK_FAILED_ERROR and e.step_key == step.step_key
                   and e.event_type == DagsterEventType.ASSET_CHECK_EVALUATION
                   and not e.event_specific_data.passed and e.event_specific_data.description]
        return "\n".join([f"{step.step_key} failed: {error.message.strip()}", *reasons])
    run = next((e for e in events if e.event_type in (DagsterEventType.RESOURCE_INIT_FAILURE,
                                                       DagsterEventType.RUN_FAILURE)
                and getattr(e.event_specific_data, "error", None) is not None), None)
    if run is None:
        return None
    error = run.event_specific_data.error
    while error.cause is not None:
        error = error.cause
    return f"the run failed before its first step: {error.message.strip()}"


def _write_run_metrics(settings: Settings, result, duration_s: float) -> None:
    """The run's duration, rows per table and the refit versions' metrics for Prometheus' textfile collector
    (monitoring/metrics.py); never fails the run."""
    rows = {}
    for event in result.all_events:
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            count = materialization.metadata.get(ROW_COUNT)
            if count is not None:
                rows[materialization.asset_key.to_user_string().replace("/", ".")] = int(count.value)
    metrics, champion = [], None
    try:
        with duckdb.connect(str(settings.build_warehouse), read_only=True) as con:
            metrics = con.execute("""
                SELECT m.model, m.split, m.metric, m.value FROM ml.model_metrics m
                JOIN ml.training_decisions d USING (model, model_version)
                WHERE d.run_id = ? AND m.value IS NOT NULL""", [result.run_id]).fetchall()
            champion = (con.execute("SELECT model FROM marts.dim_model_versions WHERE is_champion").fetchone()
                        or [None])[0]
    except duckdb.Error as exc:  # a run that failed early has not written these yet
        log.debug("run metrics without model metrics: %s", exc)
    try:
        write_pipeline_textfile(settings.data_dir / TEXTFILE, run_id=result.run_id, succeeded=result.success,
                                duration_s=duration_s, rows=rows, model_metrics=metrics, champion=champion)
    except OSError as exc:
        log.warning("could not write the run metrics: %s", exc)


def main() -> int:
    settings = Settings.from_env()
    configure_logging(settings.log_level)
    # Dagster's own INFO lines (dbt invocations, step starts) repeat what the platform's loggers say.
    console_level = "DEBUG" if settings.log_level == "DEBUG" else "WARNING"
    warnings.filterwarnings("ignore", category=BetaWarning)  # Dagster's own use of its beta APIs
    job = defs.resolve_job_def("forecast_pipeline")
    log_file = settings.data_dir / "logs" / f"run-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.log"
    log_file.parent.mkdir(parents=True, exist_ok=True)
    print(f"forecast_pipeline: progress below; step output (dbt's log) in {log_file}", flush=True)
    started = time.perf_counter()
    with DagsterInstance.get() as instance, open(log_file, "w") as out, contextlib.redirect_stdout(out):
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": console_level}}}})
    steps: dict[str, dict] = {}
    for event in result.all_events:
        entry = steps.setdefault(event.step_key or "", {"metadata": {}, "seconds": 0.0, "status": "?", "assets": 0})
        if event.event_type == DagsterEventType.ASSET_MATERIALIZATION:
            entry["assets"] += 1
            if entry["assets"] == 1:
                entry["metadata"] = dict(event.event_specific_data.materialization.metadata)
        elif event.event_type == DagsterEventType.STEP_SUCCESS:
            entry["seconds"], entry["status"] = event.event_specific_data.duration_ms / 1000, "ok"
        elif event.event_type == DagsterEventType.STEP_FAILURE:
            entry["status"] = "FAILED"
    duration_s = time.perf_counter() - started
    print(f"\nforecast_pipeline run {result.run_id}: {'succeeded' if result.success else 'FAILED'} "
          f"in {duration_s:.0f}s")
    _write_run_metrics(settings, result, duration_s)
    for step, entry in steps.items():
        if step:
            print(_step_line(step, entry["seconds"], entry["metadata"], entry["assets"]) + ("" if entry["status"] == "ok" else
                                                                              f"  {entry['status']}"))
    if not result.success:
        message = failure_message(result.all_events)
        if message:
            print(f"\n{message}", file=sys.stderr)
        return 1
    print_summary(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
