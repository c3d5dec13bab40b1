"""Build the warehouse with dbt outside Dagster: for benchmarks, samples and tests.

The Dagster assets are the platform's way to run everything; these helpers run the same dbt project (the one
definition of every table) on a given DuckDB file when no orchestration is wanted:

* :func:`build_warehouse` -- ingest a folder of Rossmann-layout files and ``dbt build`` all but the forecast marts;
* :func:`build_store_stats` -- ``marts.agg_store_sales_stats`` for a frame of history rows (feature-mart columns),
  e.g. a generated sample, loaded as ``raw.sales`` first.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import duckdb
import pandas as pd

DBT_PROJECT_DIR = Path(__file__).resolve().parents[1] / "dbt_project"


def dbt_executable() -> str:
    """The ``dbt`` of this interpreter's environment, else the one on PATH."""
    candidate = Path(sys.executable).with_name("dbt")
    if candidate.exists():
        return str(candidate)
    found = shutil.which("dbt")
    if not found:
        raise RuntimeError("the dbt executable was not found (install the project: make install)")
    return found


def run_dbt(warehouse: str | Path, *args: str) -> str:
    """``dbt <args>`` against ``warehouse`` with scratch target/log folders; returns the output, raises on failure."""
    with tempfile.TemporaryDirectory(prefix="dbt_") as scratch:
        env = {**os.environ, "WAREHOUSE_PATH": str(Path(warehouse).resolve()),
               "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", "DBT_USE_COLORS": "false"}
        cmd = [dbt_executable(), *args, "--project-dir", str(DBT_PROJECT_DIR), "--profiles-dir", str(DBT_PROJECT_DIR),
               "--target-path", str(Path(scratch) / "target"), "--log-path", str(Path(scratch) / "logs")]
        result = subprocess.run(cmd, env=env, cwd=scratch, capture_output=True, text=True)
    if result.returncode != 0:
        raise RuntimeError(f"dbt {' '.join(args)} failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}")
    return result.stdout


def build_warehouse(raw_dir: str | Path, warehouse: str | Path, dbt_vars: dict | None = None) -> None:
    """Ingest ``raw_dir`` into ``warehouse`` (validated load, as the platform does) and build every dbt model and
    test except the forecast marts (which need the models' ``ml`` tables); ``dbt_vars`` override the project's
    vars (e.g. ``{"backtest_folds": 4}``)."""
    from forecasting.ingest import load_incoming, promote_incoming

    Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(warehouse))
    try:
        load_incoming(con, Path(raw_dir))
        promote_incoming(con)
    finally:
        con.close()
    run_dbt(warehouse, "build", "--exclude", "tag:forecast", "--quiet", "--vars", json.dumps(dbt_vars or {}))


def build_store_stats(history: pd.DataFrame, warehouse: str | Path) -> pd.DataFrame:
    """``marts.agg_store_sales_stats`` of ``history`` (rows with the feature mart's columns; plan rows ignored).

    The rows are written to ``raw.sales`` of ``warehouse`` (replacing it) in the Kaggle layout and dbt builds the
    statistics' lineage there; returns the table as :func:`forecasting.features.load_store_stats_table` does.
    """
    from forecasting.features import load_store_stats_table

    hist = history.loc[history["is_history"]] if "is_history" in history.columns else history
    sales = pd.DataFrame({
        "Store": hist["store_id"].astype("int64").to_numpy(),
        "DayOfWeek": pd.to_datetime(hist["sale_date"]).dt.dayofweek.to_numpy() + 1,
        "Date": pd.to_datetime(hist["sale_date"]).dt.date.to_numpy(),
        "Sales": hist["sales"].fillna(0).astype("int64").to_numpy(),
        "Customers": hist["customers"].fillna(0).astype("int64").to_numpy(),
        "Open": hist["is_open"].astype(bool).astype("int64").to_numpy(),
        "Promo": hist["is_promo"].astype(bool).astype("int64").to_numpy(),
        "StateHoliday": hist["state_holiday"].astype(str).to_numpy() if "state_holiday" in hist else "0",
        "SchoolHoliday": hist["is_school_holiday"].astype(bool).astype("int64").to_numpy()
        if "is_school_holiday" in hist else 0,
    })
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.register("history_rows", sales)
        con.execute("CREATE OR REPLACE TABLE raw.sales AS SELECT * FROM history_rows")
        con.unregister("history_rows")
    finally:
        con.close()
    run_dbt(warehouse, "run", "--select", "+agg_store_sales_stats", "--quiet")
    return load_store_stats_table(warehouse)
