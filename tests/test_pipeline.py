"""End to end: the whole Dagster graph on the session's synthetic dataset (tests/conftest.py), and bad input
stopping it.  Tests that run the pipeline again do so on a private copy of the session's data folder."""

import json
import shutil
import subprocess
import sys
import time

import duckdb
import pytest
from dagster import AssetKey, materialize

from conftest import HORIZON_DAYS as HORIZON
from conftest import N_STORES
from forecasting.folds import ForecastSpec
from orchestration.definitions import ALL_ASSETS, build_resources
from orchestration.resources import DuckDBWarehouse, PlatformPaths, TrainingSettings
from serving.api import create_app
from serving.reader import open_published, read_publication

ML_TABLES = ("store_sales_forecast", "model_metrics", "model_registry")


def resources_for(data_dir, raw_dir):
    return build_resources(
        paths=PlatformPaths(data_dir=str(data_dir), raw_data_dir=str(raw_dir)),
        warehouse=DuckDBWarehouse(path=str(data_dir / "warehouse.duckdb")),
        training=TrainingSettings(profile="fast"),
    )


def query(data_dir, sql):
    with duckdb.connect(str(data_dir / "warehouse.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def snapshot(data_dir):
    tables = ["raw.sales", "raw.stores", "raw.plan", "marts.fct_store_daily_features",
              *(f"ml.{t}" for t in ML_TABLES)]
    return {t: query(data_dir, f"SELECT count(*), hash(list(x ORDER BY x::VARCHAR)) FROM {t} x")[0]
            for t in tables}


@pytest.fixture(scope="module")
def platform(pipeline_warehouse):
    return pipeline_warehouse.raw_dir, pipeline_warehouse.data_dir, pipeline_warehouse.result


def private_copy(data_dir, tmp_path):
    """A copy of the session's data folder that a test may run the pipeline on again."""
    return shutil.copytree(data_dir, tmp_path / "data")


def test_forecasts_for_every_plan_store_day_from_each_model(platform):
    _, data_dir, _ = platform
    rows = query(data_dir, """
        SELECT model, count(*), count(DISTINCT store_id), min(forecast_date), max(forecast_date),
               bool_and(sales_lower <= sales_pred AND sales_pred <= sales_upper AND sales_lower >= 0)
        FROM ml.store_sales_forecast GROUP BY model ORDER BY model""")
    plan_days = query(data_dir, "SELECT count(*) FROM raw.plan")[0][0]
    assert plan_days == N_STORES * HORIZON
    assert [r[0] for r in rows] == ["baseline", "blend", "lightgbm", "lstm", "random_forest"]
    for _, n, stores, first, last, ordered in rows:
        assert (n, stores, (last - first).days + 1, ordered) == (plan_days, N_STORES, HORIZON, True)
    closed = query(data_dir, """
        SELECT max(f.sales_pred) FROM ml.store_sales_forecast f
        JOIN raw.plan p ON p.Store = f.store_id AND p.Date = f.forecast_date WHERE p.Open = 0""")
    assert closed == [(0.0,)]


def test_metrics_registry_and_bi_marts(platform):
    _, data_dir, result = platform
    models = ("baseline", "random_forest", "lightgbm", "lstm", "blend")
    metrics = query(data_dir, "SELECT model, split, metric FROM ml.model_metrics")
    assert set(metrics) == {(m, s, k) for m in models for s in ("backtest_1", "backtest_2", "validation")
                            for k in ("rmspe", "rmse", "mae", "mape", "coverage_80")}
    registry = query(data_dir, "SELECT model, artifact_path FROM ml.model_registry")
    assert len(registry) == len(models)
    assert all((data_dir / "models" / m).exists() for m, _ in registry)
    assert query(data_dir, "SELECT count(*) FROM marts.fct_sales_forecast") == \
        query(data_dir, "SELECT count(*) FROM ml.store_sales_forecast")
    assert query(data_dir, "SELECT count(DISTINCT model) FROM marts.fct_sales_forecast_monthly") == [(len(models),)]
    assert (data_dir / "reports" / "data_docs" / "index.html").exists()
    assert query(data_dir, "SELECT count(DISTINCT store_id) FROM marts.dim_store_segment") == [(N_STORES,)]
    insight_meta = result.asset_materializations_for_node("warehouse_models")
    charted = {m.asset_key.path[-1] for m in insight_meta if "chart" in m.metadata}
    assert {"insight_promo_effect", "insight_seasonality"} <= charted
    checks = {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[(AssetKey(["raw", "sales"]), "great_expectations")]


def test_champion_importance_and_diagnostics(platform):
    _, data_dir, result = platform
    champ = query(data_dir, "SELECT DISTINCT model, model_version FROM ml.champion_forecast")
    assert len(champ) == 1
    # The champion rule: the lowest recency-weighted mean RMSPE over the folds (ForecastSpec.recency_weights).
    scores = query(data_dir, "SELECT model, split, value FROM ml.model_metrics WHERE metric = 'rmspe'")
    splits = sorted({split for _, split, _ in scores}, key=lambda s: (s == "validation", s))
    weights = ForecastSpec().recency_weights(splits)
    weighted = {model: sum(weights[s] * v for m, s, v in scores if m == model) / sum(weights.values())
                for model in {m for m, _, _ in scores}}
    assert champ[0][0] == min(sorted(weighted), key=weighted.get)
    assert query(data_dir, "SELECT count(*) FROM ml.champion_forecast") == query(data_dir, "SELECT count(*) FROM raw.plan")
    cols = query(data_dir, "SELECT column_name FROM information_schema.columns WHERE table_schema = 'ml' "
                           "AND table_name = 'champion_forecast' ORDER BY ordinal_position")
    assert [c[0] for c in cols] == ["store_id", "forecast_date", "model", "model_version", "origin_date", "sales_pred",
                                    "sales_lower", "sales_upper", "customers_pred", "created_at"]
    imp = query(data_dir, "SELECT model, count(*), count(DISTINCT feature), min(method), max(method) "
                          "FROM ml.feature_importance GROUP BY model ORDER BY model")
    assert [r[0] for r in imp] == ["baseline", "blend", "lightgbm", "lstm", "random_forest"]
    assert all(n == nf and n > 10 and lo == hi == "permutation_rmspe" for _, n, nf, lo, hi in imp)
    diag = query(data_dir, "SELECT count(*), count(adf_pvalue), min(acf_lag1), max(acf_lag1) FROM ml.series_diagnostics")
    assert diag[0][0] == N_STORES and diag[0][1] == N_STORES and -1 <= diag[0][2] <= diag[0][3] <= 1
    charts = {m.asset_key.path[-1]: m.metadata for m in result.get_asset_materialization_events()
              and [e.event_specific_data.materialization for e in result.get_asset_materialization_events()]}
    for name in ("random_forest", "lstm", "blend"):
        md = charts[name]
        assert md["feature_importance_chart"].value.startswith("![")
        assert "data:image/png;base64," in md["forecast_vs_actual_chart"].value


def test_bad_input_stops_the_run_and_loses_nothing(platform, tmp_path):
    raw_dir, data_dir, _ = platform
    data_dir = private_copy(data_dir, tmp_path)
    before = snapshot(data_dir)
    bad_dir = tmp_path / "bad"
    shutil.copytree(raw_dir, bad_dir)
    lines = (bad_dir / "train.csv").read_text().splitlines()
    # A closed day that claims sales: a blocking expectation of raw.sales.
    closed = next(i for i, line in enumerate(lines) if line.split(",")[5] == "0")
    fields = lines[closed].split(",")
    fields[3] = "1234"
    lines[closed] = ",".join(fields)
    (bad_dir / "train.csv").write_text("\n".join(lines) + "\n")

    published_before = read_publication(data_dir / "published").version_id
    result = materialize(ALL_ASSETS, resources=resources_for(data_dir, bad_dir),
                         raise_on_error=False)
    assert not result.success
    failed = {(e.asset_key, e.check_name) for e in result.get_asset_check_evaluations() if not e.passed}
    assert (AssetKey(["raw", "sales"]), "great_expectations") in failed
    assert not result.get_asset_materialization_events()
    assert snapshot(data_dir) == before
    assert read_publication(data_dir / "published").version_id == published_before


def test_api_predict_matches_the_published_random_forest(platform):
    _, data_dir, _ = platform
    plan = query(data_dir, "SELECT Store, Date, Open, Promo, StateHoliday, SchoolHoliday FROM raw.plan "
                           "ORDER BY Store, Date LIMIT 20")
    rows = [{"store": s, "date": d.isoformat(), "open": bool(o), "promo": bool(p), "state_holiday": h,
             "school_holiday": bool(sh)} for s, d, o, p, h, sh in plan]
    from fastapi.testclient import TestClient

    with TestClient(create_app(data_dir / "published")) as client:
        response = client.post("/predict", params={"model": "random_forest"}, json=rows)
        assert response.status_code == 200, response.text
        body = response.json()
        assert client.get("/stores/999999/forecast").status_code == 404
    assert body["model"] == "random_forest"
    expected = dict(((s, d.isoformat()), v) for s, d, v in query(data_dir, f"""
        SELECT store_id, forecast_date, sales_pred FROM ml.store_sales_forecast
        WHERE model_version = '{body["model_version"]}'"""))
    for prediction in body["predictions"]:
        assert prediction["sales_pred"] == pytest.approx(expected[(prediction["store"], prediction["date"])],
                                                         rel=1e-6, abs=1e-6)


def test_readers_of_the_published_warehouse_never_block_a_run(platform, tmp_path):
    """A full run while another process reads the published copy in a loop: no errors on either side."""
    raw_dir, data_dir, _ = platform
    data_dir = private_copy(data_dir, tmp_path)
    published = data_dir / "published"
    before = read_publication(published).version_id
    stop, ready, out = tmp_path / "stop", tmp_path / "ready", tmp_path / "probe.json"
    probe = subprocess.Popen([sys.executable, "-m", "serving.probe", "--published", str(published),
                              "--stop-file", str(stop), "--ready-file", str(ready), "--out", str(out)])
    try:
        deadline = time.monotonic() + 60
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        with open_published(published) as held:  # a dashboard left open all the while
            result = materialize(ALL_ASSETS, resources=resources_for(data_dir, raw_dir))
            held_version = held.execute("SELECT version_id FROM meta.publication").fetchall()[0][0]
        time.sleep(1.0)
    finally:
        stop.touch()
        probe.wait(timeout=60)
    assert result.success
    after = read_publication(published).version_id
    summary = json.loads(out.read_text())
    assert summary["errors"] == []
    assert summary["iterations"] > 10
    assert after != before and held_version == before
    assert [v["version_id"] for v in summary["versions"]] == [before, after]


def test_dbt_steps_leave_no_target_folder_behind(platform):
    from settings import DBT_PROJECT_DIR

    # dagster-dbt names each invocation's folder "<step>-<first 7 characters of the run id>-<random>"
    left = list((DBT_PROJECT_DIR / "target").glob(f"*-{platform[2].run_id[:7]}-*"))
    assert left == []
