"""A run commits whole or not at all (warehouse/staging.py, orchestration/run_guard.py): real Dagster runs on a
private copy of the session pipeline's data folder. Runs that fail (at the raw step, in training, after the
write-back) or are killed, leaving the last good state byte for byte: tests/test_bad_input_catalogue.py."""

from __future__ import annotations

import os
import subprocess
import sys

import duckdb
from dagster import AssetKey

from orchestration.definitions import materialize_pipeline
from settings import REPO_ROOT
from warehouse.staging import last_commit

RAW_KEYS = [AssetKey(["raw", t]) for t in ("sales", "stores", "plan")]


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
