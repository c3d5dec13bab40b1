"""The input-folder sensor, the daily schedule and the failure alerts, evaluated against real Dagster instances
(the sensor only reads the folder, so the raw files here are tiny)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterRun,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    MetadataValue,
    build_run_status_sensor_context,
    build_schedule_context,
    build_sensor_context,
    instance_for_test,
    job,
    op,
)

from dagster._core.events import EngineEventData  # not exported at the top level

from orchestration import automation
from orchestration.automation import alert_on_run_failure, daily_forecast_schedule, raw_files_sensor
from orchestration.resources import PlatformPaths
from settings import Settings

RAW_KEYS = [AssetKey(["raw", t]) for t in ("sales", "stores", "plan")]
SALES = "Store,DayOfWeek,Date,Sales,Customers,Open,Promo,StateHoliday,SchoolHoliday\n1,5,2015-07-31,5263,555,1,1,0,1\n"


@pytest.fixture
def instance():
    with instance_for_test() as instance:
        yield instance


@pytest.fixture
def raw_dir(tmp_path):
    folder = tmp_path / "raw"
    folder.mkdir()
    (folder / "train.csv").write_text(SALES)
    (folder / "store.csv").write_text("Store,StoreType\n1,c\n")
    (folder / "notes.txt").write_text("not a raw file")
    return folder


def _tick(instance, raw_dir, cursor=None):
    context = build_sensor_context(instance=instance, cursor=cursor,
                                   resources={"paths": PlatformPaths(data_dir=str(raw_dir.parent / "data"),
                                                                     raw_data_dir=str(raw_dir))})
    return raw_files_sensor.evaluate_tick(context)


def _add_run(instance, status: DagsterRunStatus, job_name: str = "forecast_pipeline") -> DagsterRun:
    return instance.add_run(DagsterRun(job_name=job_name, status=status))


def test_new_train_file_requests_a_run_once(instance, raw_dir):
    first = _tick(instance, raw_dir)
    [request] = first.run_requests
    assert request.run_key == json.loads(first.cursor)["fingerprint"]
    assert sorted(json.loads(first.cursor)["files"]) == ["store.csv", "train.csv"]

    again = _tick(instance, raw_dir, first.cursor)
    assert again.run_requests == [] and "unchanged" in again.skip_message

    (raw_dir / "train_2015-08.csv").write_text(SALES.replace("2015-07-31", "2015-08-01"))
    dropped = _tick(instance, raw_dir, again.cursor or first.cursor)
    [new_request] = dropped.run_requests
    assert new_request.run_key != request.run_key
    assert "train_2015-08.csv" in new_request.tags["raw_files"]
    assert new_request.tags["raw_files_fingerprint"] == new_request.run_key

    assert _tick(instance, raw_dir, dropped.cursor).run_requests == []


def test_touched_but_unchanged_files_do_not_trigger_changed_content_does(instance, raw_dir):
    cursor = _tick(instance, raw_dir).cursor
    os.utime(raw_dir / "train.csv", ns=(1, 1))  # new mtime, same bytes
    touched = _tick(instance, raw_dir, cursor)
    assert touched.run_requests == []
    (raw_dir / "train.csv").write_text(SALES.replace("5263", "5264"))  # same size, new content
    [request] = _tick(instance, raw_dir, cursor).run_requests
    assert request.run_key != json.loads(cursor)["fingerprint"]


def test_gzipped_and_plan_files_count_other_files_do_not(instance, raw_dir):
    files = [p.name for p in automation.watched_files(raw_dir)]
    (raw_dir / "test.csv.gz").write_bytes(b"\x1f\x8b")
    (raw_dir / "train_extra.csv.gz").write_bytes(b"\x1f\x8b")
    (raw_dir / "trainee.csv").write_text("x")
    assert files == ["store.csv", "train.csv"]
    assert [p.name for p in automation.watched_files(raw_dir)] == ["store.csv", "test.csv.gz", "train.csv",
                                                                  "train_extra.csv.gz"]


def test_empty_or_missing_folder_skips(instance, tmp_path):
    result = _tick(instance, tmp_path / "nowhere" / "raw")
    assert result.run_requests == [] and "no raw files" in result.skip_message


def test_run_in_progress_holds_the_request_back(instance, raw_dir):
    running = _add_run(instance, DagsterRunStatus.STARTED, job_name="__ASSET_JOB")  # e.g. the UI's Materialize
    held = _tick(instance, raw_dir)
    assert held.run_requests == []
    assert running.run_id in held.skip_message and "in progress" in held.skip_message
    assert held.cursor is None  # nothing recorded: the files are still new after that run

    instance.report_run_failed(running)
    assert len(_tick(instance, raw_dir).run_requests) == 1


def test_started_run_whose_process_died_does_not_hold_back(instance, raw_dir):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    orphan = _add_run(instance, DagsterRunStatus.STARTED)
    instance.report_engine_event("Executing steps in process", orphan,
                                 EngineEventData(metadata={"pid": MetadataValue.text(dead.stdout.strip())}))
    assert automation.run_in_progress(instance) is None
    assert len(_tick(instance, raw_dir).run_requests) == 1


def test_files_a_successful_run_already_loaded_do_not_trigger(instance, raw_dir):
    @op
    def noop():
        pass

    @job(name="forecast_pipeline")
    def stand_in():  # only its run record matters: a successful run that started after the files were written
        noop()

    assert stand_in.execute_in_process(instance=instance).success
    loaded = _tick(instance, raw_dir)
    assert loaded.run_requests == [] and "were loaded by run" in loaded.skip_message
    (raw_dir / "train_new.csv").write_text(SALES)
    assert len(_tick(instance, raw_dir, loaded.cursor).run_requests) == 1


def test_daily_schedule_requests_a_run_unless_one_is_in_progress(instance):
    [request] = daily_forecast_schedule.evaluate_tick(build_schedule_context(instance=instance)).run_requests
    assert request.tags["trigger"] == "daily_schedule"
    starting = _add_run(instance, DagsterRunStatus.STARTING)
    skipped = daily_forecast_schedule.evaluate_tick(build_schedule_context(instance=instance))
    assert skipped.run_requests == [] and starting.run_id in skipped.skip_message


def test_sensor_and_schedule_are_on_by_default_in_the_code_location():
    from orchestration.definitions import defs

    env = Settings.from_env({})
    schedule_def = defs.resolve_schedule_def("daily_forecast_schedule")
    assert (schedule_def.cron_schedule, schedule_def.execution_timezone) == (env.forecast_schedule_cron,
                                                                             env.forecast_schedule_timezone)
    assert schedule_def.default_status == DefaultScheduleStatus.RUNNING
    assert schedule_def.job_name == "forecast_pipeline"
    for name in ("raw_files_sensor", "alert_on_run_failure"):
        assert defs.resolve_sensor_def(name).default_status == DefaultSensorStatus.RUNNING
    assert defs.resolve_sensor_def("raw_files_sensor").job_name == "forecast_pipeline"
    assert Settings.from_env({"FORECAST_SCHEDULE_CRON": "30 2 * * 1-5", "FORECAST_SCHEDULE_TIMEZONE": "Europe/Berlin"}
                             ).forecast_schedule_cron == "30 2 * * 1-5"


def _alerts(data_dir):
    return [json.loads(line) for line in (data_dir / "alerts.jsonl").read_text().splitlines()]


def test_failed_step_alerts_once_with_step_and_error(tmp_path, instance):
    from orchestration.definitions import materialize_pipeline

    raw_dir = tmp_path / "raw"
    raw_dir.mkdir()
    (raw_dir / "train.csv").write_text(SALES)  # store.csv is missing: the raw step fails
    data_dir = tmp_path / "data"
    result = materialize_pipeline(data_dir, raw_dir, selection=RAW_KEYS, instance=instance)
    assert not result.success
    [alert] = _alerts(data_dir)
    assert (alert["kind"], alert["severity"], alert["run_id"], alert["step"]) == (
        "step_failure", "ERROR", result.run_id, "raw_tables")
    assert "store.csv" in alert["error"] and "step raw_tables failed: RawInputError" in alert["text"]

    # the run failure sensor leaves runs with a failed step to the hook: no second alert
    run = instance.get_run_by_id(result.run_id)
    failure = instance.get_records_for_run(result.run_id, of_type=DagsterEventType.RUN_FAILURE).records[0]
    alert_on_run_failure(build_run_status_sensor_context(
        "alert_on_run_failure", failure.event_log_entry.dagster_event, instance, run).for_run_failure())
    assert len(_alerts(data_dir)) == 1


def test_run_refused_before_its_first_step_alerts_from_the_run_failure_sensor(tmp_path, instance, monkeypatch):
    from orchestration.definitions import materialize_pipeline
    from orchestration.run_guard import run_lock

    data_dir = tmp_path / "data"
    # the sensor runs in the daemon: DATA_DIR is the environment's unless the run's config names another
    monkeypatch.setattr(automation, "_ENV", Settings(data_dir=data_dir))
    with run_lock(data_dir / ".run.lock", "the-other-run"):
        result = materialize_pipeline(data_dir, tmp_path / "raw", selection=RAW_KEYS, instance=instance)
    assert not result.success
    assert not (data_dir / "alerts.jsonl").exists()  # no step ran, so no hook
    [failure] = instance.get_records_for_run(result.run_id, of_type=DagsterEventType.RUN_FAILURE).records
    run = instance.get_run_by_id(result.run_id)
    alert_on_run_failure(build_run_status_sensor_context(
        "alert_on_run_failure", failure.event_log_entry.dagster_event, instance, run).for_run_failure())
    [alert] = _alerts(data_dir)
    assert (alert["kind"], alert["run_id"]) == ("run_failure", result.run_id)
    assert "the-other-run" in alert["text"] or "the-other-run" in alert["error"]
