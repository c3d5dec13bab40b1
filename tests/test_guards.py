"""Guards against absurd values, through the real path: the raw asset (load, GX suites, Failure) on a copy of the
session fixture's raw files with a few rows spoiled, and the forecast guard in a whole pipeline run. Each failure
must say on the command line (the Failure's description) which file, column and sample values are wrong."""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
from dagster import AssetKey

from orchestration.assets.guards import GuardSettings
from orchestration.definitions import materialize_pipeline

RAW_KEYS = [AssetKey(["raw", t]) for t in ("sales", "stores", "plan")]


def spoiled_copy(pipeline_warehouse, target: Path, **edits) -> Path:
    """The fixture's raw files copied to ``target``; ``edits``: file stem -> function changing its DataFrame."""
    shutil.copytree(pipeline_warehouse.raw_dir, target)
    for stem, edit in edits.items():
        path = target / f"{stem}.csv"
        frame = pd.read_csv(path, dtype={"StateHoliday": str})
        edit(frame).to_csv(path, index=False)
    return target


def failure_message(result) -> str:
    failures = [e for e in result.all_events if e.is_step_failure]
    assert failures, "the run did not fail"
    messages = []
    for event in failures:  # the error and its causes, as Dagster prints them
        error = event.step_failure_data.error
        while error is not None:
            messages.append(error.message)
            error = error.cause
    return "\n".join(messages)


def run_raw(tmp_path: Path, raw_dir: Path, **overrides) -> str:
    result = materialize_pipeline(tmp_path / "data", raw_dir, selection=RAW_KEYS, **overrides)
    assert not result.success
    return failure_message(result)


def times_1000(sales: pd.DataFrame) -> pd.DataFrame:
    rows = sales.index[sales["Open"].eq(1) & sales["Sales"].gt(0)][::50][:20]
    sales.loc[rows, "Sales"] *= 1000
    return sales


def test_sales_far_beyond_the_stores_own_history_stop_the_run(pipeline_warehouse, tmp_path):
    raw = spoiled_copy(pipeline_warehouse, tmp_path / "raw", train=times_1000)
    spoiled = pd.read_csv(raw / "train.csv").sort_values(["Store", "Date"])
    first = spoiled.loc[spoiled["Sales"] > 1_000_000].iloc[0]
    message = run_raw(tmp_path, raw)
    assert "train.csv" in message and "_Sales_vs_store (computed from Sales" in message
    assert "GUARD_STORE_MAX_MULTIPLE" in message and "max_value=10.0" in message
    assert f"Store={first.Store}, Date={first.Date}, Sales={first.Sales}" in message  # a sample row with its value
    assert not (tmp_path / "data" / "published").exists()


def test_store_attributes_plan_and_sales_per_customer(pipeline_warehouse, tmp_path):
    def stores(frame):
        frame.loc[0, "CompetitionDistance"] = 1e12
        frame.loc[1, "CompetitionOpenSinceYear"] = 1850
        return frame

    def train(frame):
        row = frame.index[frame["Open"].eq(1) & frame["Sales"].gt(1000)][0]
        frame.loc[row, "Customers"] = 1  # thousands of euros per customer
        return frame

    def plan(frame):
        dates = pd.to_datetime(frame["Date"])
        gap = frame["Store"].eq(3) & dates.between(dates.min() + pd.Timedelta(days=9), dates.min() + pd.Timedelta(days=15))
        frame.loc[frame["Store"].eq(4), "Date"] = (dates + pd.DateOffset(years=10)).dt.strftime("%Y-%m-%d")
        return frame.loc[~gap]

    raw = spoiled_copy(pipeline_warehouse, tmp_path / "raw", store=stores, train=train, test=plan)
    message = run_raw(tmp_path, raw)
    assert "store.csv (raw.stores), column CompetitionDistance" in message and "CompetitionDistance=1000000000000.0" in message
    assert "column CompetitionOpenSinceYear" in message and "CompetitionOpenSinceYear=1850" in message
    assert "train.csv (raw.sales), column _Sales_per_Customer" in message and "Customers=1" in message
    assert "test.csv (raw.plan), column _days_since_previous" in message and "Store=3" in message  # the gap
    assert "test.csv (raw.plan), column Date" in message and "Store=4, Date=2025" in message  # beyond the horizon
    assert "column _first_day_of_store" in message  # store 4 does not start the day after the history


def test_sales_with_a_fraction_are_refused(pipeline_warehouse, tmp_path):
    def train(frame):
        frame["Sales"] = frame["Sales"].astype(float)
        frame.loc[3, "Sales"] = 5263.7
        return frame

    message = run_raw(tmp_path, spoiled_copy(pipeline_warehouse, tmp_path / "raw", train=train))
    assert "train.csv: column Sales must hold whole numbers" in message and "Sales=5263.7" in message


def test_forecast_guard_keeps_a_wrong_forecast_from_the_readers(pipeline_warehouse, tmp_path):
    raw = spoiled_copy(pipeline_warehouse, tmp_path / "raw", train=times_1000)
    # The raw guards let the x1000 rows through. The fast models on 5 stores stay near the stores' usual level despite
    # them (at most about 2 x their 95th percentile), so the forecast guard is set below that to show that its failure
    # names the stores and models and keeps the run from publishing.
    lenient = GuardSettings(store_max_multiple=1e6, sales_per_customer_max=1e6, forecast_max_multiple=0.5)
    result = materialize_pipeline(tmp_path / "data", raw, guards=lenient)
    assert not result.success
    checks = [e.asset_check_evaluation_data for e in result.all_events
              if e.event_type_value == "ASSET_CHECK_EVALUATION"
              and e.asset_check_evaluation_data.check_name == "forecast_within_store_history"]
    assert checks and not checks[0].passed
    assert "forecast refused" in checks[0].description
    assert re.search(r"store \d+, model \w+ \S+: [\d,]+ on \d{4}-\d\d-\d\d", checks[0].description)
    assert "x)" in checks[0].description  # the forecast as a multiple of the store's reference
    assert not (tmp_path / "data" / "published" / "warehouse.duckdb").exists()
