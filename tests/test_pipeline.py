"""End to end: the whole Dagster graph on a tiny synthetic dataset, and bad input stopping it."""

import shutil

import duckdb
import pytest
from dagster import AssetKey, materialize

from forecasting.synthetic import generate_dataset
from orchestration.definitions import ALL_ASSETS, build_resources
from orchestration.assets.forecasts import features_expectations
from orchestration.resources import DuckDBWarehouse, PlatformPaths, TrainingSettings

N_STORES, HORIZON = 4, 42
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
def platform(tmp_path_factory):
    root = tmp_path_factory.mktemp("platform")
    raw_dir, data_dir = root / "raw", root / "data"
    generate_dataset(raw_dir, n_stores=N_STORES, start="2014-06-01", end="2015-07-31", horizon_days=HORIZON)
    result = materialize([*ALL_ASSETS, features_expectations], resources=resources_for(data_dir, raw_dir))
    assert result.success
    return raw_dir, data_dir, result


def test_forecasts_for_every_plan_store_day_from_each_model(platform):
    _, data_dir, _ = platform
    rows = query(data_dir, """
        SELECT model, count(*), count(DISTINCT store_id), min(forecast_date), max(forecast_date),
               bool_and(sales_lower <= sales_pred AND sales_pred <= sales_upper AND sales_lower >= 0)
        FROM ml.store_sales_forecast GROUP BY model ORDER BY model""")
    plan_days = query(data_dir, "SELECT count(*) FROM raw.plan")[0][0]
    assert plan_days == N_STORES * HORIZON
    assert [r[0] for r in rows] == ["baseline", "lstm", "random_forest"]
    for _, n, stores, first, last, ordered in rows:
        assert (n, stores, (last - first).days + 1, ordered) == (plan_days, N_STORES, HORIZON, True)
    closed = query(data_dir, """
        SELECT max(f.sales_pred) FROM ml.store_sales_forecast f
        JOIN raw.plan p ON p.Store = f.store_id AND p.Date = f.forecast_date WHERE p.Open = 0""")
    assert closed == [(0.0,)]


def test_metrics_registry_and_bi_marts(platform):
    _, data_dir, result = platform
    metrics = query(data_dir, "SELECT model, metric FROM ml.model_metrics WHERE split = 'validation'")
    assert {(m, k) for m, k in metrics} == {(m, k) for m in ("baseline", "random_forest", "lstm")
                                           for k in ("rmspe", "rmse", "mae", "mape")}
    registry = query(data_dir, "SELECT model, artifact_path FROM ml.model_registry")
    assert len(registry) == 3
    assert all((data_dir / "models" / m).exists() for m, _ in registry)
    assert query(data_dir, "SELECT count(*) FROM marts.fct_sales_forecast") == \
        query(data_dir, "SELECT count(*) FROM ml.store_sales_forecast")
    assert query(data_dir, "SELECT count(DISTINCT model) FROM marts.fct_sales_forecast_monthly") == [(3,)]
    assert (data_dir / "reports" / "data_docs" / "index.html").exists()
    assert query(data_dir, "SELECT count(DISTINCT store_id) FROM marts.dim_store_segment") == [(N_STORES,)]
    insight_meta = result.asset_materializations_for_node("warehouse_models")
    charted = {m.asset_key.path[-1] for m in insight_meta if "chart" in m.metadata}
    assert {"insight_promo_effect", "insight_seasonality"} <= charted
    checks = {(e.asset_key, e.check_name): e.passed for e in result.get_asset_check_evaluations()}
    assert checks[(AssetKey(["marts", "fct_store_daily_features"]), "great_expectations")]
    assert checks[(AssetKey(["raw", "sales"]), "great_expectations")]


def test_bad_input_stops_the_run_and_loses_nothing(platform, tmp_path):
    raw_dir, data_dir, _ = platform
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

    result = materialize([*ALL_ASSETS, features_expectations], resources=resources_for(data_dir, bad_dir),
                         raise_on_error=False)
    assert not result.success
    failed = {(e.asset_key, e.check_name) for e in result.get_asset_check_evaluations() if not e.passed}
    assert (AssetKey(["raw", "sales"]), "great_expectations") in failed
    assert not result.get_asset_materialization_events()
    assert snapshot(data_dir) == before
