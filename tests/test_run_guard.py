"""One run at a time per DATA_DIR, and what the clean-up keeps (orchestration/run_guard.py).

Runs are real Dagster runs through the real run guard; the ones that must hold the lock run in child processes.
Each test works on a private copy of the session pipeline's data folder. Runs killed at each step, and the clean-up
after them: tests/test_bad_input_catalogue.py."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey, DagsterEventType, DagsterInstance, DagsterRunStatus

from forecasting.artifacts import remove_leftovers
from orchestration.definitions import materialize_pipeline
from orchestration.resources import TrainingSettings, run_guard
from orchestration.run import failure_message
from orchestration.run_guard import RunLockBusy, run_lock, served_versions
from settings import REPO_ROOT
from state import version_folders

LOCK = ".run.lock"

# A first run that holds the guard until told to stop: a real Dagster run of one asset wearing the pipeline's hook.
HOLDER = """
import sys, time
from pathlib import Path
from dagster import DagsterInstance, asset, materialize
from orchestration.definitions import build_resources, requires_run_guard
from orchestration.resources import DuckDBWarehouse, PlatformPaths

data_dir, home, signals = sys.argv[1], sys.argv[2], Path(sys.argv[3])

@asset
def hold(context):
    (signals / "run_id").write_text(context.run_id)
    while not (signals / "stop").exists():
        time.sleep(0.05)
    (signals / "stopped").write_text(str(time.time()))

result = materialize([hold.with_hooks({requires_run_guard})], instance=DagsterInstance.local_temp(home),
                     resources=build_resources(paths=PlatformPaths(data_dir=data_dir),
                                               warehouse=DuckDBWarehouse(path=data_dir + "/warehouse.duckdb")))
sys.exit(0 if result.success else 1)
"""


def _python(script: str, *args, **popen) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=REPO_ROOT, env=env, **popen)


def _wait_for(path: Path, process: subprocess.Popen, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert process.poll() is None, f"the helper process exited with {process.returncode}"
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)
    return path.read_text()


def _tree(root: Path) -> dict[str, str]:
    """Every file under ``root`` with a hash of its bytes, and every folder."""
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(root.rglob("*"))}


def test_run_lock_names_its_holder_and_survives_a_killed_holder(tmp_path):
    lock = tmp_path / LOCK
    holder = _python("import sys, time\nfrom orchestration.run_guard import run_lock\n"
                     "with run_lock(sys.argv[1], 'run-a'):\n    print('held', flush=True)\n    time.sleep(600)\n",
                     lock, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(RunLockBusy, match=rf"in use by run run-a \(pid {holder.pid} on .*started at"):
            with run_lock(lock, "run-b"):
                pass
        started = time.monotonic()
        with pytest.raises(RunLockBusy, match="after waiting 0.6s"):
            with run_lock(lock, "run-b", timeout_s=0.6):
                pass
        assert time.monotonic() - started >= 0.6
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # The OS dropped the dead holder's lock; its record says it died holding it.
    with run_lock(lock, "run-c") as stale:
        assert (stale.run_id, stale.pid) == ("run-a", holder.pid)
        assert "run-c" in lock.read_text()
    assert lock.read_text() == ""  # a clean release leaves no record
    with run_lock(lock, "run-d") as stale:
        assert stale is None


def test_a_second_run_fails_at_once_changing_nothing_or_waits_for_the_first(pipeline_warehouse, data_copy,
                                                                             tmp_path):
    home, signals = tmp_path / "dagster_home", tmp_path / "signals"
    home.mkdir()
    signals.mkdir()
    first = _python(HOLDER, data_copy, home, signals)
    try:
        first_run = _wait_for(signals / "run_id", first)
        before = _tree(data_copy)
        refused = materialize_pipeline(data_copy, pipeline_warehouse.raw_dir)
        assert not refused.success
        assert refused.get_step_success_events() == [] and not refused.get_asset_materialization_events()
        message = failure_message(refused.all_events)
        assert f"in use by run {first_run} (pid {first.pid} on " in message
        assert "started at" in message and "RUN_LOCK_TIMEOUT_S" in message
        assert _tree(data_copy) == before

        # With a wait: the second run starts when the first has finished.
        threading.Timer(2.0, (signals / "stop").touch).start()
        instance = DagsterInstance.local_temp(str(home))
        waited = materialize_pipeline(data_copy, pipeline_warehouse.raw_dir,
                                      selection=[AssetKey(["published", "warehouse"])], instance=instance,
                                      run_guard=run_guard.configured({"timeout_s": 120}))
        assert waited.success, failure_message(waited.all_events)
        assert first.wait(timeout=60) == 0
    finally:
        (signals / "stop").touch()
        first.wait(timeout=60)
    (publish_started,) = [e.timestamp for e in instance.all_logs(waited.run_id, of_type=DagsterEventType.STEP_START)]
    assert publish_started > float((signals / "stopped").read_text())
    # The first run was alive and STARTED while the second checked for dead runs: it must not have been failed.
    assert instance.get_run_by_id(first_run).status == DagsterRunStatus.SUCCESS


def test_pruning_never_deletes_what_the_published_copy_serves(pipeline_warehouse, data_copy):
    models = data_copy / "models"
    served = served_versions(data_copy / "published" / "warehouse.duckdb")
    assert served and served == version_folders(models)
    # Three newer runs that failed after their write-back: in the build registry, never published.
    newer = {(m, f"2099010{i}T000000000000Z") for m, _ in served for i in (1, 2, 3)}
    for model, version in newer:
        (models / model / version).mkdir()
        (models / model / version / "meta.json").write_text("{}")
    with duckdb.connect(str(data_copy / "warehouse.duckdb")) as con:
        con.execute("INSERT INTO ml.model_registry SELECT r.* REPLACE (v.version AS model_version) "
                    "FROM ml.model_registry r, (SELECT unnest(?) AS version) v", [sorted({v for _, v in newer})])

    result = materialize_pipeline(data_copy, pipeline_warehouse.raw_dir, training=TrainingSettings(keep_versions=2),
                                  selection=[AssetKey(["models", "artifact_retention"])])
    assert result.success, failure_message(result.all_events)
    # Each model keeps its 2 newest versions and the one the published copy serves, although it is older.
    assert version_folders(models) == served | {(m, v) for m, v in newer if not v.startswith("20990101")}


def test_leftovers_go_only_when_known_to_be_orphans_and_older_than_the_run(tmp_path):
    for name in ("20260101T000000000000Z", "20260102T000000000000Z", ".20260103T000000000000Z.x1.tmp"):
        (tmp_path / "lstm" / name).mkdir(parents=True)
    now = time.time()
    # An unreadable registry: orphans are kept, temporary folders go.
    assert [p.name for p in remove_leftovers(tmp_path, None, before=now + 1)] == [".20260103T000000000000Z.x1.tmp"]
    # Nothing changed after the run started goes.
    assert remove_leftovers(tmp_path, set(), before=now - 60) == []
    removed = remove_leftovers(tmp_path, {("lstm", "20260102T000000000000Z")}, before=now + 1)
    assert [p.name for p in removed] == ["20260101T000000000000Z"]
    assert [p.name for p in (tmp_path / "lstm").iterdir()] == ["20260102T000000000000Z"]


def test_a_served_blend_keeps_its_members_artifacts(tmp_path):
    published = tmp_path / "published.duckdb"
    with duckdb.connect(str(published)) as con:
        con.execute("CREATE SCHEMA ml; CREATE SCHEMA marts")
        con.execute("CREATE TABLE ml.model_registry (model VARCHAR, model_version VARCHAR, params JSON)")
        con.execute("""INSERT INTO ml.model_registry VALUES
            ('random_forest', 'v1', '{"n_estimators": 10}'), ('random_forest', 'v2', '{"n_estimators": 10}'),
            ('lstm', 'v1', '{}'), ('blend', 'b1', '{"members": {"random_forest": "v1", "lstm": "v1"}}'),
            ('blend', 'b2', '{"members": {"random_forest": "v0"}}')""")
        con.execute("CREATE TABLE marts.dim_model_versions AS SELECT 'blend' AS model, 'b1' AS model_version, "
                    "false AS is_latest, true AS is_champion")
    # b1 is the pinned champion; b2 is only the newest blend: its member v0 stays too.
    assert served_versions(published) == {("random_forest", "v2"), ("lstm", "v1"), ("blend", "b2"), ("blend", "b1"),
                                          ("random_forest", "v1"), ("random_forest", "v0")}
