"""The daily loop end to end on a copy of the session pipeline: a new week of sales arrives as a file, the models
only forecast the new origin (nothing refits, nothing already written changes), last week's forecast is scored
against the new actuals; a pinned champion is served, keeps forecasting after its model refits, and every change
is in ml.champion_history."""

from __future__ import annotations

import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import AssetSelection

from forecasting.protocol import MODEL_NAMES
from ingestion.synthetic import generate_dataset
from monitoring.checks import MonitoringThresholds, realised_vs_backtest
from orchestration.assets.champion import PINS_KEY
from orchestration.assets.models import model_key
from orchestration.definitions import materialize_pipeline
from orchestration.resources import Retraining
from orchestration.run import failure_message

WEEK = 7


def query(path: Path, sql: str, params=None) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


@pytest.fixture(scope="module")
def refreshed(pipeline_warehouse, tmp_path_factory):
    """The session pipeline's data and input copied, then one refresh run after a new week of sales."""
    root = tmp_path_factory.mktemp("loop")
    data_dir = shutil.copytree(pipeline_warehouse.data_dir, root / "data")
    raw_dir = shutil.copytree(pipeline_warehouse.raw_dir, root / "raw")
    build = data_dir / "warehouse.duckdb"
    history_end = pd.Timestamp(query(build, "SELECT max(sale_date) FROM marts.fct_store_daily_features "
                                            "WHERE is_history")[0][0])
    # The same generator a week longer: its last week is the new file, its plan the new plan.
    longer = generate_dataset(root / "longer", n_stores=pipeline_warehouse.n_stores, start="2014-06-01",
                              end=f"{history_end + pd.Timedelta(days=WEEK):%Y-%m-%d}",
                              horizon_days=pipeline_warehouse.horizon_days)
    sales = pd.read_csv(longer["train"], dtype=str)
    new_week = sales[pd.to_datetime(sales["Date"]) > history_end]
    new_week.to_csv(raw_dir / f"train_{history_end + pd.Timedelta(days=1):%Y%m%d}.csv", index=False)
    shutil.copy(longer["test"], raw_dir / "test.csv")
    before = {
        "registry": query(build, "SELECT model, model_version FROM ml.model_registry ORDER BY ALL"),
        "forecast": query(build, "SELECT count(*), hash(list(f ORDER BY f::VARCHAR)) FROM ml.store_sales_forecast f"),
    }
    result = materialize_pipeline(data_dir, raw_dir)
    assert result.success, failure_message(result.all_events)
    return {"data_dir": data_dir, "raw_dir": raw_dir, "build": build, "result": result, "before": before,
            "old_origin": (history_end + pd.Timedelta(days=1)).date(),
            "new_origin": (history_end + pd.Timedelta(days=WEEK + 1)).date(), "n_stores": pipeline_warehouse.n_stores}


def test_a_new_week_only_forecasts_the_new_origin_keeping_every_earlier_row(refreshed):
    build, run_id = refreshed["build"], refreshed["result"].run_id
    decisions = query(build, "SELECT model, decision, reason FROM ml.training_decisions WHERE run_id = ?", [run_id])
    assert {m for m, _, _ in decisions} == {*MODEL_NAMES, "blend"}
    assert {d for _, d, _ in decisions} == {"forecast_only"}, decisions
    assert all("days old" in reason for _, _, reason in decisions)
    # No new version; every earlier forecast row untouched; one more origin per version.
    assert query(build, "SELECT model, model_version FROM ml.model_registry ORDER BY ALL") == \
        refreshed["before"]["registry"]
    old = query(build, "SELECT count(*), hash(list(f ORDER BY f::VARCHAR)) FROM ml.store_sales_forecast f "
                       "WHERE origin_date = ?", [refreshed["old_origin"]])
    assert old == refreshed["before"]["forecast"]
    origins = query(build, "SELECT DISTINCT origin_date FROM ml.store_sales_forecast ORDER BY 1")
    assert [o for (o,) in origins] == [refreshed["old_origin"], refreshed["new_origin"]]
    # The decisions' versions forecast the new origin; the served forecast is the new origin's.
    assert query(build, "SELECT count(DISTINCT model_version) FROM ml.store_sales_forecast WHERE origin_date = ?",
                 [refreshed["new_origin"]]) == [(len(MODEL_NAMES) + 1,)]
    published = refreshed["data_dir"] / "published" / "warehouse.duckdb"
    assert query(published, "SELECT min(forecast_date), min(origin_date), max(origin_date) "
                            "FROM ml.champion_forecast") == [(refreshed["new_origin"],) * 3]


def test_last_weeks_forecast_is_scored_against_the_new_actuals(refreshed):
    build = refreshed["build"]
    scored = query(build, """
        SELECT count(*), count(actual_sales), count(abs_pct_error), min(horizon_day), max(horizon_day)
        FROM marts.fct_forecast_vs_actual WHERE origin_date = ? AND forecast_date < ?""",
                   [refreshed["old_origin"], refreshed["new_origin"]])
    n_rows = WEEK * refreshed["n_stores"] * (len(MODEL_NAMES) + 1)
    assert scored[0][:2] == (n_rows, n_rows) and scored[0][2] > 0 and scored[0][3:] == (1, WEEK)
    # The retraining policy's degradation rule (the monitoring check) scores each store-day by its latest forecast:
    # recompute it from the mart's rows.
    rows = pd.DataFrame(query(build, """
        SELECT f.actual_sales, f.sales_pred FROM marts.fct_forecast_vs_actual f
        WHERE f.model = (SELECT model FROM marts.dim_model_versions WHERE is_champion) AND f.abs_pct_error IS NOT NULL
        QUALIFY row_number() OVER (PARTITION BY store_id, forecast_date ORDER BY origin_date DESC,
                                   model_version DESC) = 1"""), columns=["actual", "pred"])
    with duckdb.connect(str(build), read_only=True) as con:
        outcome = realised_vs_backtest(con, MonitoringThresholds(), version_only=True)
    expected = (((rows["actual"] - rows["pred"]) / rows["actual"]) ** 2).mean() ** 0.5
    assert 1 <= outcome.details["n_days"] <= WEEK  # days of the new week with open stores
    assert outcome.details["realised_rmspe"] == pytest.approx(expected, abs=1e-5)


def test_a_pinned_champion_is_served_keeps_forecasting_after_a_refit_and_is_recorded(refreshed):
    data_dir, raw_dir, build = refreshed["data_dir"], refreshed["raw_dir"], refreshed["build"]
    published = data_dir / "published" / "warehouse.duckdb"
    [(rule_model, rule_version)] = query(build, "SELECT model, model_version FROM marts.dim_model_versions "
                                                "WHERE is_champion")
    pinned = "lstm" if rule_model != "lstm" else "random_forest"
    [(pinned_version,)] = query(build, "SELECT model_version FROM marts.dim_model_versions WHERE model = ? "
                                       "AND is_latest", [pinned])
    set_champion = AssetSelection.assets(PINS_KEY).downstream()

    def pin_run(**config):
        return materialize_pipeline(data_dir, raw_dir, selection=set_champion,
                                    run_config={"ops": {"ml__champion_pins": {"config": config}}})

    refused = pin_run(action="pin", model=pinned, model_version="20000101T000000000000Z", requested_by="alice")
    assert not refused.success
    assert "has no forecasts in ml.store_sales_forecast" in failure_message(refused.all_events)
    assert query(build, "SELECT count(*) FROM ml.champion_pins") == [(0,)]

    result = pin_run(action="pin", model=pinned, model_version=pinned_version, reason="holiday season",
                     requested_by="alice")
    assert result.success, failure_message(result.all_events)
    assert query(published, "SELECT DISTINCT model, model_version FROM ml.champion_forecast") == \
        [(pinned, pinned_version)]
    assert query(published, "SELECT champion_reason, is_pinned FROM marts.dim_model_versions WHERE is_champion") == \
        [("pinned", True)]

    # Every model refits: the pinned version still forecasts the new origin beside its successor.
    refit = materialize_pipeline(data_dir, raw_dir, retraining=Retraining(force_refit=True),
                                 selection=AssetSelection.assets(*map(model_key, MODEL_NAMES)).downstream())
    assert refit.success, failure_message(refit.all_events)
    versions = query(build, "SELECT DISTINCT model_version FROM ml.store_sales_forecast WHERE model = ? AND "
                            "created_at = (SELECT max(created_at) FROM ml.store_sales_forecast)", [pinned])
    assert len(versions) == 2 and (pinned_version,) in versions
    assert query(published, "SELECT DISTINCT model_version FROM ml.champion_forecast") == [(pinned_version,)]

    unpinned = pin_run(action="unpin", reason="season over", requested_by="bob")
    assert unpinned.success, failure_message(unpinned.all_events)
    history = query(build, "SELECT event, model, model_version, from_model, from_model_version, reason, changed_by "
                           "FROM ml.champion_history ORDER BY changed_at")
    assert history[0][:3] == ("promotion", rule_model, rule_version)
    assert ("pin", pinned, pinned_version, rule_model, rule_version, "holiday season", "alice") in history
    assert ("unpin", None, None, pinned, pinned_version, "season over", "bob") in history
    assert history[-1][0] == "promotion" and history[-1][1:3] != (pinned, pinned_version)
    assert query(published, "SELECT is_pinned FROM marts.dim_model_versions WHERE is_champion") == [(False,)]
