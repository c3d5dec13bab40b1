"""A run commits whole or not at all (warehouse/staging.py, orchestration/run_guard.py): real Dagster runs on a
private copy of the session pipeline's data folder."""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from dagster import AssetKey

from orchestration.assets.guards import GuardSettings
from orchestration.definitions import materialize_pipeline
from orchestration.resources import Retraining
from orchestration.run import failure_message
from settings import REPO_ROOT
from warehouse.staging import last_commit

RAW_KEYS = [AssetKey(["raw", t]) for t in ("sales", "stores", "plan")]


def last_good_state(data_dir: Path) -> dict[str, str]:
    """What a failed run must leave exactly as it was: the build warehouse, the model artifacts and the published
    copy, file by file (sha-256), and no other file beside the build warehouse (no staged copy)."""
    paths = [*data_dir.glob("*.duckdb*"), *data_dir.glob(".*.duckdb*"), *(data_dir / "models").rglob("*"),
             *(data_dir / "published").glob("*.duckdb*"), *(data_dir / "published").glob(".*.duckdb*")]
    return {p.relative_to(data_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(paths)}


@pytest.fixture
def data_copy(pipeline_warehouse, tmp_path) -> Path:
    return shutil.copytree(pipeline_warehouse.data_dir, tmp_path / "data")


def test_a_run_that_fails_after_the_write_back_changes_nothing(pipeline_warehouse, data_copy):
    before = last_good_state(data_copy)
    committed_before = last_commit(data_copy / "warehouse.duckdb")
    assert committed_before is not None  # the session run committed its state
    # Everything up to the last check passes: raw, dbt, new model versions (forced refits) and their write-back;
    # then the forecast guard refuses every forecast.
    result = materialize_pipeline(data_copy, pipeline_warehouse.raw_dir, guards=GuardSettings(forecast_max_multiple=0.01),
                                  retraining=Retraining(force_refit=True))
    assert not result.success
    assert "forecast_within_store_history" in failure_message(result.all_events)
    written = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"raw/sales", "ml/model_registry", "ml/store_sales_forecast"} <= written  # written, then discarded
    assert last_good_state(data_copy) == before
    assert last_commit(data_copy / "warehouse.duckdb") == committed_before


def test_a_successful_run_commits_and_make_publish_names_it(pipeline_warehouse, data_copy):
    published = data_copy / "published" / "warehouse.duckdb"
    result = materialize_pipeline(data_copy, pipeline_warehouse.raw_dir, selection=RAW_KEYS)  # no publish step
    assert result.success
    assert last_commit(data_copy / "warehouse.duckdb").run_id == result.run_id
    assert not list(data_copy.glob(".warehouse.duckdb.run-*"))
    env = {**os.environ, "DATA_DIR": str(data_copy), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("WAREHOUSE_PATH", None)
    env.pop("PUBLISHED_WAREHOUSE", None)
    done = subprocess.run([sys.executable, "-m", "warehouse.publish"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert f"the state of run {result.run_id}, committed at" in done.stdout
    with duckdb.connect(str(published), read_only=True) as con:
        assert con.execute("SELECT source_run FROM meta.publication").fetchone()[0] == result.run_id


def test_make_publish_refuses_a_warehouse_no_run_committed(tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    with duckdb.connect(str(data_dir / "warehouse.duckdb")) as con:  # written by hand, never by a checked run
        con.execute("CREATE SCHEMA marts; CREATE TABLE marts.t AS SELECT 1 AS x")
    env = {**os.environ, "DATA_DIR": str(data_dir), "PYTHONPATH": str(REPO_ROOT)}
    env.pop("WAREHOUSE_PATH", None)
    env.pop("PUBLISHED_WAREHOUSE", None)
    done = subprocess.run([sys.executable, "-m", "warehouse.publish"], cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 1
    assert "holds no state committed by a run whose checks passed" in done.stderr
    assert not (data_dir / "published" / "warehouse.duckdb").exists()
