"""What starts `forecast_pipeline` without a person, and what tells a person when something failed.

- ``raw_files_sensor``: watches the input folder (``RAW_DATA_DIR``, or ``DATA_DIR/default_raw``) and requests a run
  when the set of raw files is new or changed. The run key is the SHA-256 of the set's names and contents, so the
  same files never trigger twice; a touched but unchanged file changes nothing.
- ``daily_forecast_schedule``: the fallback, daily at ``FORECAST_SCHEDULE_CRON`` in ``FORECAST_SCHEDULE_TIMEZONE``.
- ``alert_on_step_failure`` (a failure hook on every asset) and ``alert_on_run_failure`` (runs that fail before
  any step, e.g. refused by the run lock; needs the daemon) send an alert (monitoring/alerts.py).

Both the sensor and the schedule skip while a run of the job is in progress: the pipeline holds DATA_DIR's run lock
(orchestration/run_guard.py) and DuckDB takes one writer, so a second run would only fail. They are RUNNING by
default, so ``make dev`` (whose daemon evaluates them) starts them; ``make run`` has no daemon.

There is no declarative automation on the dbt forecast marts: every run of the job rebuilds all marts after the
models, in the same process, which is the one writer DuckDB allows; a separately launched automation run would
race the pipeline for the run lock and fail.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path

from dagster import (
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    HookContext,
    RunFailureSensorContext,
    RunRequest,
    RunsFilter,
    ScheduleEvaluationContext,
    SensorEvaluationContext,
    SkipReason,
    failure_hook,
    run_failure_sensor,
    schedule,
    sensor,
)

from ingestion.raw_layout import RAW_FILES
from monitoring.alerts import send_alert
from orchestration.resources import PlatformPaths
from orchestration.run_guard import _pid_alive, _run_pids, has_failed_step
from settings import Settings

JOB_NAME = "forecast_pipeline"
_ENV = Settings.from_env()

# The input folder's raw files: each table's file names, plus extra sales files (train_2015-08.csv, ...).
WATCHED_NAMES = frozenset(name for names in RAW_FILES.values() for name in names)
WATCHED_GLOBS = ("train_*.csv", "train_*.csv.gz")
HASH_CHUNK = 1 << 20
# Runs that hold, or are about to take, DATA_DIR's run lock.
PENDING_STATUSES = [DagsterRunStatus.QUEUED, DagsterRunStatus.STARTING, DagsterRunStatus.STARTED]


def watched_files(input_dir: Path) -> list[Path]:
    """The raw files in ``input_dir`` the pipeline reads, by name."""
    if not input_dir.is_dir():
        return []
    files = {p for p in input_dir.iterdir() if p.name in WATCHED_NAMES}
    files.update(p for pattern in WATCHED_GLOBS for p in input_dir.glob(pattern))
    return sorted(p for p in files if p.is_file())


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while chunk := stream.read(HASH_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def file_set_state(files: list[Path], known: Mapping[str, list] | None = None) -> dict[str, list]:
    """``{name: [size, mtime_ns, ctime_ns, sha256]}`` of ``files``. A file whose size and times match ``known``
    keeps its known hash, so a tick re-reads only files that changed (raw files can be tens of MB)."""
    known = known or {}
    state = {}
    for path in files:
        stat = path.stat()
        stamp = [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns]
        previous = known.get(path.name)
        state[path.name] = previous if previous and previous[:3] == stamp else [*stamp, _sha256(path)]
    return state


def fingerprint(state: Mapping[str, list]) -> str:
    """SHA-256 over the set's names and content hashes: the same files give the same key, whatever their times."""
    return hashlib.sha256(json.dumps(sorted((name, entry[3]) for name, entry in state.items())).encode()).hexdigest()


def run_in_progress(instance) -> str | None:
    """The id of a queued or running run of any job (each writes DATA_DIR: `forecast_pipeline`, the UI's
    *Materialize*), else None. A STARTED run whose recorded processes are all gone died without finishing (the
    next run marks it failed, run_guard.fail_dead_runs): it does not count, or it would hold off every run."""
    for run in instance.get_runs(RunsFilter(statuses=PENDING_STATUSES)):
        if run.status != DagsterRunStatus.STARTED:
            return run.run_id
        pids = _run_pids(instance, run.run_id)
        if not pids or any(_pid_alive(pid) for pid in pids):
            return run.run_id
    return None


def _last_success(instance) -> tuple[str, float] | None:
    """(run id, start time as a Unix time) of the job's latest successful run, or None."""
    records = instance.get_run_records(RunsFilter(job_name=JOB_NAME, statuses=[DagsterRunStatus.SUCCESS]), limit=1)
    if not records or records[0].start_time is None:
        return None
    return records[0].dagster_run.run_id, records[0].start_time


@sensor(job_name=JOB_NAME, minimum_interval_seconds=_ENV.raw_sensor_interval_s,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs forecast_pipeline when the input folder's raw files (train.csv, train_*.csv, store.csv, "
                    "test.csv, also .gz) are new or changed; run key: SHA-256 of the file set.")
def raw_files_sensor(context: SensorEvaluationContext, paths: PlatformPaths):
    input_dir = paths.input_dir
    files = watched_files(input_dir)
    if not files:
        return SkipReason(f"no raw files in {input_dir} yet")
    cursor = json.loads(context.cursor) if context.cursor else {}
    state = file_set_state(files, cursor.get("files"))
    key = fingerprint(state)
    if key == cursor.get("fingerprint"):
        return SkipReason(f"the {len(files)} raw files in {input_dir} are unchanged (set {key[:12]})")
    busy = run_in_progress(context.instance)
    if busy:  # the cursor stays as it was: the first tick after that run looks again
        return SkipReason(f"run {busy} is in progress; the new raw files in {input_dir} wait for it to finish")
    context.update_cursor(json.dumps({"fingerprint": key, "files": state}))
    last = _last_success(context.instance)
    # ctime (unlike mtime, which copies may preserve) moves whenever a file is written or moved into place: a
    # successful run that started after the newest ctime read these very files (e.g. `make run` before `make dev`)
    if last is not None and last[1] > max(entry[2] for entry in state.values()) / 1e9:
        return SkipReason(f"the raw files in {input_dir} were loaded by run {last[0]} (set {key[:12]})")
    names = ", ".join(sorted(state))
    context.log.info(f"new or changed raw files in {input_dir} (set {key[:12]}): {names}")
    return RunRequest(run_key=key, tags={"raw_files_fingerprint": key, "raw_files": names[:200]})


@schedule(job_name=JOB_NAME, cron_schedule=_ENV.forecast_schedule_cron,
          execution_timezone=_ENV.forecast_schedule_timezone, default_status=DefaultScheduleStatus.RUNNING,
          description="Daily fallback run of forecast_pipeline (FORECAST_SCHEDULE_CRON, FORECAST_SCHEDULE_TIMEZONE).")
def daily_forecast_schedule(context: ScheduleEvaluationContext):
    busy = run_in_progress(context.instance)
    if busy:
        return SkipReason(f"run {busy} of {JOB_NAME} is in progress")
    return RunRequest(tags={"trigger": "daily_schedule"})


def alert_settings(data_dir: str | None) -> Settings:
    """The alert settings of the environment, with the run's own DATA_DIR (its `paths` resource) when known."""
    return dataclasses.replace(_ENV, data_dir=Path(data_dir)) if data_dir else _ENV


@failure_hook(required_resource_keys={"paths"})
def alert_on_step_failure(context: HookContext) -> None:
    """One alert per failed step, with the step and its error."""
    error = context.op_exception
    message = f"{type(error).__name__}: {error}".strip() if error is not None else "unknown error"
    first_line = message.splitlines()[0][:300] if message else ""
    send_alert("step_failure", f"{context.job_name}: step {context.step_key} failed: {first_line}",
               {"severity": "ERROR", "run_id": context.run_id, "job": context.job_name, "step": context.step_key,
                "error": message[:4000]},
               alert_settings(context.resources.paths.data_dir))


@run_failure_sensor(default_status=DefaultSensorStatus.RUNNING,
                    description="Alerts for runs that failed before or outside their steps (a failed step has "
                                "already sent its own alert).")
def alert_on_run_failure(context: RunFailureSensorContext) -> None:
    from orchestration.run import failure_message  # run.py imports the definitions, which import this module

    run = context.dagster_run
    if has_failed_step(context.instance, run.run_id):
        return  # alert_on_step_failure reported it
    events = [entry.dagster_event for entry in context.instance.all_logs(run.run_id) if entry.dagster_event]
    error = failure_message(events) or context.failure_event.message or "unknown error"
    data_dir = (run.run_config or {}).get("resources", {}).get("paths", {}).get("config", {}).get("data_dir")
    send_alert("run_failure", f"{run.job_name}: run {run.run_id} failed: {error.splitlines()[0][:300]}",
               {"severity": "ERROR", "run_id": run.run_id, "job": run.job_name, "error": error[:4000]},
               alert_settings(data_dir))
