"""Forecasts keep their origin, and are scored against the actuals in the warehouse (issue 10), on the session
pipeline's warehouse (tests/conftest.py): a forecast-only refresh writes two more origins of the champion version
through the write-back, dbt rebuilds the forecast marts, and the marts are checked against the ml rows and
forecasting.metrics computed here."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pytest

from forecasting.metrics import rmspe
from warehouse.dbt import run_dbt
from warehouse.writeback import write_model_outputs

PAST_SHIFT = pd.Timedelta(days=42)  # whole weeks: the shifted forecast keeps its weekday pattern
NEXT_SHIFT = pd.Timedelta(days=7)


def query(warehouse, sql: str, params=None) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).df()


@pytest.fixture(scope="module")
def refreshed(pipeline_warehouse, tmp_path_factory):
    """A copy of the build warehouse where the champion version got two more origins in one forecast-only write:
    its forecast moved back 42 days (a past origin, every day of it realised) and forward 7 days (the newest
    origin); the forecast marts rebuilt by dbt."""
    build = pipeline_warehouse.copy_build(tmp_path_factory.mktemp("monitoring") / "build.duckdb")
    with duckdb.connect(str(build)) as con:
        before = con.sql("SELECT * FROM ml.store_sales_forecast").df()
        model, version, origin = con.execute(
            "SELECT model, model_version, latest_origin_date FROM marts.dim_model_versions WHERE is_champion"
        ).fetchone()
        served = before.loc[before["model_version"] == version]
        shifted = [served.assign(forecast_date=served["forecast_date"] + shift,
                                 origin_date=served["origin_date"] + shift) for shift in (-PAST_SHIFT, NEXT_SHIFT)]
        counts = write_model_outputs(con, forecasts=pd.concat(shifted, ignore_index=True))
        after = con.sql("SELECT * FROM ml.store_sales_forecast").df()
    run_dbt(build, ["build", "--select", "tag:forecast"])
    return {"build": build, "before": before, "after": after, "model": model, "version": version,
            "origin": pd.Timestamp(origin), "n_written": counts["store_sales_forecast"], "served": served}


def test_a_refresh_adds_origins_and_overwrites_nothing(refreshed):
    before, after, version = refreshed["before"], refreshed["after"], refreshed["version"]
    assert refreshed["n_written"] == 2 * len(refreshed["served"])
    assert len(after) == len(before) + refreshed["n_written"]
    key = ["model_version", "origin_date", "store_id", "forecast_date"]
    kept = after.merge(before[key], on=key).sort_values(key).reset_index(drop=True)
    pd.testing.assert_frame_equal(kept, before.sort_values(key).reset_index(drop=True))  # created_at too
    origins = sorted(after.loc[after["model_version"] == version, "origin_date"].unique())
    origin = refreshed["origin"]
    assert origins == [origin - PAST_SHIFT, origin, origin + NEXT_SHIFT]


def test_every_origin_in_fct_forecast_vs_actual(refreshed):
    build, version, origin = refreshed["build"], refreshed["version"], refreshed["origin"]
    fva = query(build, "SELECT * FROM marts.fct_forecast_vs_actual")
    assert len(fva) == len(refreshed["after"])
    mine = fva[fva["model_version"] == version]
    by_origin = mine.groupby("origin_date").agg(n=("store_id", "size"), realised=("has_actuals", "sum"),
                                                first_horizon=("horizon_day", "min"))
    n = len(refreshed["served"])
    assert by_origin["n"].tolist() == [n, n, n]
    # the past origin is realised entirely, the current and next ones not at all
    assert by_origin["realised"].tolist() == [n, 0, 0] and (by_origin["first_horizon"] == 1).all()
    past = mine[mine["origin_date"] == origin - PAST_SHIFT]
    assert (past["horizon_day"] == (past["forecast_date"] - past["origin_date"]).dt.days + 1).all()
    assert past["actual_sales"].notna().all()
    scored = past["is_open"] & (past["actual_sales"] > 0)
    expected = (past["actual_sales"] - past["sales_pred"]).abs() / past["actual_sales"]
    assert np.allclose(past.loc[scored, "abs_pct_error"], expected[scored])
    assert past.loc[~scored, "abs_pct_error"].isna().all()


def test_served_forecast_is_the_latest_origin_everywhere(refreshed):
    build, version, model = refreshed["build"], refreshed["version"], refreshed["model"]
    latest = refreshed["origin"] + NEXT_SHIFT
    dim = query(build, "SELECT * FROM marts.dim_model_versions WHERE model_version = ?", [version]).iloc[0]
    assert pd.Timestamp(dim["latest_origin_date"]) == latest and dim["n_origins"] == 3
    assert dim["n_forecast_rows"] == len(refreshed["served"]) and dim["is_champion"]
    for table in ("marts.fct_sales_forecast", "ml.champion_forecast"):
        rows = query(build, f"SELECT * FROM {table} WHERE model_version = ?", [version])
        assert len(rows) == len(refreshed["served"]) and (rows["origin_date"] == latest).all(), table
        expected = refreshed["served"].assign(forecast_date=refreshed["served"]["forecast_date"] + NEXT_SHIFT)
        merged = rows.merge(expected, on=["store_id", "forecast_date"], suffixes=("", "_written"))
        assert len(merged) == len(rows) and np.allclose(merged["sales_pred"], merged["sales_pred_written"]), table
    monthly = query(build, "SELECT * FROM marts.fct_sales_forecast_monthly WHERE model_version = ? AND is_served",
                    [version])
    assert (monthly["origin_date"] == latest).all() and monthly["n_days"].sum() == len(refreshed["served"])
    # other models are untouched: one origin each, served as before
    others = query(build, "SELECT model, n_origins FROM marts.dim_model_versions WHERE model <> ?", [model])
    assert (others["n_origins"] == 1).all()


def test_realised_rmspe_bias_and_coverage_match_a_direct_computation(refreshed):
    build, version = refreshed["build"], refreshed["version"]
    rows = refreshed["after"].query("model_version == @version")
    actuals = query(build, "SELECT store_id, sale_date AS forecast_date, sales, is_open "
                           "FROM staging.stg_rossmann__sales")
    rows = rows.merge(actuals, on=["store_id", "forecast_date"])  # the realised days only
    assert len(rows) == len(refreshed["served"])
    rows["week_start"] = rows["forecast_date"] - pd.to_timedelta(rows["forecast_date"].dt.dayofweek, unit="D")
    report = query(build, "SELECT * FROM marts.rpt_forecast_monitoring WHERE model_version = ? ORDER BY week_start",
                   [version])
    assert report["week_start"].tolist() == sorted(rows["week_start"].unique())
    backtest_rmspe = query(build, "SELECT mean_rmspe FROM marts.dim_model_versions WHERE model_version = ?",
                           [version]).iloc[0, 0]
    for _, week in report.iterrows():
        days = rows[rows["week_start"] == week["week_start"]]
        scored = days[days["is_open"] & (days["sales"] > 0)]
        assert week["n_scored_days"] == len(scored)
        assert week["rmspe"] == pytest.approx(rmspe(days["sales"], days["sales_pred"], days["is_open"]), rel=1e-9)
        positive = scored[scored["sales_pred"] > 0]
        assert week["bias"] == pytest.approx(np.log(positive["sales_pred"] / positive["sales"]).mean(), rel=1e-9)
        inside = scored["sales"].between(scored["sales_lower"], scored["sales_upper"])
        assert week["coverage"] == pytest.approx(inside.mean(), rel=1e-9)
        assert week["backtest_rmspe"] == pytest.approx(backtest_rmspe)
    # only the refreshed version has realised forecasts
    assert query(build, "SELECT DISTINCT model_version FROM marts.rpt_forecast_monitoring")["model_version"].tolist() \
        == [version]


def test_store_rolling_28_days_match_a_direct_computation(refreshed):
    build, version, model = refreshed["build"], refreshed["version"], refreshed["model"]
    rows = refreshed["after"].query("model_version == @version")
    actuals = query(build, "SELECT store_id, sale_date AS forecast_date, sales, is_open "
                           "FROM staging.stg_rossmann__sales")
    rows = rows.merge(actuals, on=["store_id", "forecast_date"])
    report = query(build, "SELECT * FROM marts.rpt_store_forecast_monitoring WHERE is_last_realised_day")
    assert set(report["model"]) == {model} and len(report) == rows["store_id"].nunique()
    for _, store in report.iterrows():
        window = rows[(rows["store_id"] == store["store_id"])
                      & (rows["forecast_date"] > store["forecast_date"] - pd.Timedelta(days=28))]
        assert store["model_version"] == version
        assert store["rmspe_28d"] == pytest.approx(rmspe(window["sales"], window["sales_pred"], window["is_open"]),
                                                   rel=1e-9)
        scored = window[window["is_open"] & (window["sales"] > 0) & (window["sales_pred"] > 0)]
        assert store["bias_28d"] == pytest.approx(np.log(scored["sales_pred"] / scored["sales"]).mean(), rel=1e-9)


def test_monthly_accuracy_for_realised_forecasts_and_backtest_folds(refreshed):
    build, version = refreshed["build"], refreshed["version"]
    monthly = query(build, "SELECT * FROM marts.fct_sales_forecast_monthly WHERE model_version = ?", [version])
    past = monthly[(monthly["forecast_source"] == "forecast")
                   & (monthly["origin_date"] == refreshed["origin"] - PAST_SHIFT)]
    folds = monthly[monthly["forecast_source"] == "backtest"]
    assert not past.empty and not folds.empty and not past["is_served"].any()
    for part in (past, folds):
        expected = 100 * (1 - (part["sales_pred_on_actual_days"] - part["actual_sales"]).abs() / part["actual_sales"])
        assert part["sales_accuracy_pct"].notna().all() and np.allclose(part["sales_accuracy_pct"], expected)
    splits = query(build, "SELECT DISTINCT split FROM marts.fct_backtest_forecast WHERE model_version = ?", [version])
    assert set(folds["split"]) == set(splits["split"])
