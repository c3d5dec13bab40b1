import duckdb
import pandas as pd
import pytest

from warehouse.writeback import WriteBackError, ensure_ml_tables, write_model_outputs


def model_outputs(model: str, version: str, n_stores: int = 3, n_days: int = 4, level: float = 100.0,
                  origin: str = "2015-08-01"):
    days = pd.date_range(origin, periods=n_days, freq="D")
    forecasts = pd.DataFrame(
        [(s, d, model, version, days[0], level, level * 0.8, level * 1.2, level / 10)
         for s in range(1, n_stores + 1) for d in days],
        columns=["store_id", "forecast_date", "model", "model_version", "origin_date", "sales_pred", "sales_lower",
                 "sales_upper", "customers_pred"],
    )
    metrics = pd.DataFrame({"model": model, "model_version": version, "split": "validation",
                            "metric": ["rmspe", "rmse", "mae", "mape"], "value": [0.1, 10.0, 8.0, 0.09]})
    registry = pd.DataFrame([{
        "model": model, "model_version": version, "trained_at": pd.Timestamp("2026-11-24 10:00"),
        "train_start": pd.Timestamp("2013-01-01"), "train_end": pd.Timestamp("2015-07-31"),
        "n_train_rows": 1000, "params": '{"n_estimators": 10}', "artifact_path": f"/models/{model}/{version}",
    }])
    return {"forecasts": forecasts, "metrics": metrics, "registry": registry}


def table_counts(con):
    return {t: con.execute(f"SELECT count(*) FROM ml.{t}").fetchone()[0]
            for t in ("store_sales_forecast", "model_metrics", "model_registry")}


def test_contract_columns_and_types(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_model_outputs(con, **model_outputs("random_forest", "v1"))
    cols = con.execute("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema='ml' AND table_name='store_sales_forecast' "
                       "ORDER BY ordinal_position").fetchall()
    assert cols == [("store_id", "INTEGER"), ("forecast_date", "DATE"), ("model", "VARCHAR"),
                    ("model_version", "VARCHAR"), ("origin_date", "DATE"), ("sales_pred", "DOUBLE"),
                    ("sales_lower", "DOUBLE"),
                    ("sales_upper", "DOUBLE"), ("customers_pred", "DOUBLE"), ("created_at", "TIMESTAMP")]
    assert con.execute("SELECT json_extract(params, '$.n_estimators') FROM ml.model_registry").fetchone()[0] == "10"


def test_rerun_replaces_a_version_without_duplicates(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_model_outputs(con, **model_outputs("baseline", "v1"))
    write_model_outputs(con, **model_outputs("lstm", "v2"))
    write_model_outputs(con, **model_outputs("baseline", "v1", level=200.0))
    assert table_counts(con) == {"store_sales_forecast": 24, "model_metrics": 8, "model_registry": 2}
    assert con.execute("SELECT DISTINCT sales_pred FROM ml.store_sales_forecast "
                       "WHERE model='baseline'").fetchall() == [(200.0,)]
    assert con.execute("SELECT count(*) FROM (SELECT model_version, store_id, forecast_date "
                       "FROM ml.store_sales_forecast GROUP BY ALL HAVING count(*) > 1)").fetchone()[0] == 0


def test_bad_output_is_refused_and_leaves_tables_intact(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_model_outputs(con, **model_outputs("baseline", "v1"))
    before = table_counts(con)

    duplicated = model_outputs("baseline", "v1")
    duplicated["forecasts"] = pd.concat([duplicated["forecasts"]] * 2)
    with pytest.raises(WriteBackError, match="repeat the key"):
        write_model_outputs(con, **duplicated)

    with_nulls = model_outputs("baseline", "v1")
    with_nulls["forecasts"].loc[0, "sales_pred"] = None
    with pytest.raises(WriteBackError, match="NULLs"):
        write_model_outputs(con, **with_nulls)

    # A failure inside the transaction (a value that does not cast) rolls everything back.
    uncastable = model_outputs("baseline", "v1", level=300.0)
    uncastable["registry"]["n_train_rows"] = "many"
    with pytest.raises(duckdb.Error):
        write_model_outputs(con, **uncastable)
    assert table_counts(con) == before
    assert con.execute("SELECT DISTINCT sales_pred FROM ml.store_sales_forecast").fetchall() == [(100.0,)]


def backtest_rows(model: str, version: str, n_stores: int = 2, n_days: int = 3, level: float = 100.0):
    """Fold rows as the runner makes them (forecasting.runner.FOLD_COLUMNS: horizon_day 0-based) with the version."""
    days = pd.date_range("2015-07-01", periods=n_days, freq="D")
    return pd.DataFrame(
        [(model, version, split, s, d, i, True, 110.0, 11.0, level, level * 0.8, level * 1.2, None)
         for split in ("backtest_1", "validation") for s in range(1, n_stores + 1) for i, d in enumerate(days)],
        columns=["model", "model_version", "split", "store_id", "sale_date", "horizon_day", "is_open", "sales",
                 "customers", "sales_pred", "sales_lower", "sales_upper", "customers_pred"])


def test_backtest_forecast_is_written_and_replaced_per_version(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    counts = write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=backtest_rows("baseline", "v1"))
    assert counts["backtest_forecast"] == 12
    write_model_outputs(con, **model_outputs("lstm", "v2"), backtest=backtest_rows("lstm", "v2"))
    write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=backtest_rows("baseline", "v1", level=90.0))
    got = con.execute("SELECT model, count(*), max(sales_pred), bool_and(is_open) FROM ml.backtest_forecast "
                      "GROUP BY model ORDER BY model").fetchall()
    assert got == [("baseline", 12, 90.0, True), ("lstm", 12, 100.0, True)]
    cols = con.execute("SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = 'ml' "
                       "AND table_name = 'backtest_forecast' ORDER BY ordinal_position").fetchall()
    assert [c for c, _ in cols] == ["model", "model_version", "split", "store_id", "forecast_date", "horizon_day",
                                    "sales_pred", "sales_lower", "sales_upper", "actual_sales", "is_open",
                                    "customers_pred", "actual_customers", "created_at"]
    # the runner's names and 0-based horizon become the contract's: horizon_day 1 = the fold's first day
    assert con.execute("SELECT min(horizon_day), max(horizon_day), min(forecast_date)::VARCHAR, max(actual_sales) "
                       "FROM ml.backtest_forecast").fetchone() == (1, 3, "2015-07-01", 110.0)


def test_backtest_forecast_contract_is_enforced(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=backtest_rows("baseline", "v1"))
    repeated = backtest_rows("baseline", "v1")
    with pytest.raises(WriteBackError, match="repeat the key"):
        write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=pd.concat([repeated, repeated.head(1)]))
    with pytest.raises(WriteBackError, match="missing from the registry"):
        write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=backtest_rows("lstm", "v9"))
    assert con.execute("SELECT count(*), max(sales_pred) FROM ml.backtest_forecast").fetchone() == (12, 100.0)


def forecast_rows(con, version: str) -> list[tuple]:
    return con.execute("SELECT origin_date::VARCHAR, count(*), max(sales_pred), max(created_at) FROM "
                       "ml.store_sales_forecast WHERE model_version = ? GROUP BY ALL ORDER BY 1", [version]).fetchall()


def test_a_new_origin_is_added_and_a_rerun_of_an_origin_replaces_only_it(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_model_outputs(con, **model_outputs("baseline", "v1"))
    first = forecast_rows(con, "v1")
    # a forecast-only refresh of the registered version: a week later, nothing else passed
    refresh = model_outputs("baseline", "v1", level=150.0, origin="2015-08-08")["forecasts"]
    counts = write_model_outputs(con, forecasts=refresh)
    assert counts == {"store_sales_forecast": 12, "model_registry": 0}
    assert forecast_rows(con, "v1")[0] == first[0]  # the earlier origin untouched (values and created_at)
    assert [r[:3] for r in forecast_rows(con, "v1")] == [("2015-08-01", 12, 100.0), ("2015-08-08", 12, 150.0)]
    # rerunning the later origin is idempotent and still leaves the first alone
    write_model_outputs(con, forecasts=model_outputs("baseline", "v1", level=160.0, origin="2015-08-08")["forecasts"])
    assert forecast_rows(con, "v1")[0] == first[0]
    assert [r[:3] for r in forecast_rows(con, "v1")] == [("2015-08-01", 12, 100.0), ("2015-08-08", 12, 160.0)]
    assert table_counts(con) == {"store_sales_forecast": 24, "model_metrics": 4, "model_registry": 1}
    # origins of one version may overlap: a day forecast by both keeps both rows
    write_model_outputs(con, forecasts=model_outputs("baseline", "v1", n_days=10, origin="2015-08-02")["forecasts"])
    assert con.execute("SELECT count(*) FROM ml.store_sales_forecast WHERE forecast_date = DATE '2015-08-03'"
                       ).fetchone()[0] == 2 * 3


def test_forecast_only_write_needs_a_registered_version_and_sane_origins(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_model_outputs(con, **model_outputs("baseline", "v1"))
    before = table_counts(con)
    with pytest.raises(WriteBackError, match=r"neither in the registry frame nor in ml.model_registry: "
                                             r"\[\('lstm', 'v9'\)\]"):
        write_model_outputs(con, forecasts=model_outputs("lstm", "v9", origin="2015-08-08")["forecasts"])
    early = model_outputs("baseline", "v1", origin="2015-08-08")["forecasts"]
    early.loc[0, "forecast_date"] = pd.Timestamp("2015-08-07")
    with pytest.raises(WriteBackError, match="before their origin_date.*2015-08-07"):
        write_model_outputs(con, forecasts=early)
    no_origin = model_outputs("baseline", "v1", origin="2015-08-08")["forecasts"].drop(columns="origin_date")
    with pytest.raises(WriteBackError, match=r"store_sales_forecast: output lacks columns \['origin_date'\]"):
        write_model_outputs(con, forecasts=no_origin)
    assert table_counts(con) == before


def test_ensure_ml_tables_upgrades_a_warehouse_written_before_origins(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    con.execute("""
        CREATE SCHEMA ml;
        CREATE TABLE ml.store_sales_forecast (store_id INTEGER NOT NULL, forecast_date DATE NOT NULL,
            model VARCHAR NOT NULL, model_version VARCHAR NOT NULL, sales_pred DOUBLE NOT NULL,
            sales_lower DOUBLE NOT NULL, sales_upper DOUBLE NOT NULL, customers_pred DOUBLE,
            created_at TIMESTAMP NOT NULL);
        INSERT INTO ml.store_sales_forecast VALUES
            (1, DATE '2015-08-01', 'baseline', 'v1', 1, 0, 2, NULL, TIMESTAMP '2024-01-01'),
            (1, DATE '2015-08-02', 'baseline', 'v1', 1, 0, 2, NULL, TIMESTAMP '2024-01-01'),
            (1, DATE '2015-09-12', 'baseline', 'v2', 1, 0, 2, NULL, TIMESTAMP '2024-01-01');
        CREATE TABLE ml.backtest_forecast (model VARCHAR NOT NULL, model_version VARCHAR NOT NULL,
            split VARCHAR NOT NULL, store_id INTEGER NOT NULL, sale_date DATE NOT NULL, horizon_day INTEGER NOT NULL,
            is_open BOOLEAN, sales DOUBLE, customers DOUBLE, sales_pred DOUBLE NOT NULL, sales_lower DOUBLE NOT NULL,
            sales_upper DOUBLE NOT NULL, customers_pred DOUBLE, created_at TIMESTAMP NOT NULL);
        INSERT INTO ml.backtest_forecast VALUES ('baseline', 'v1', 'validation', 1, DATE '2015-07-01', 0, true,
            10, 1, 9, 8, 11, NULL, TIMESTAMP '2024-01-01');
    """)
    ensure_ml_tables(con)
    ensure_ml_tables(con)  # idempotent
    assert con.execute("SELECT model_version, origin_date::VARCHAR, count(*) FROM ml.store_sales_forecast "
                       "GROUP BY ALL ORDER BY 1").fetchall() == [("v1", "2015-08-01", 2), ("v2", "2015-09-12", 1)]
    assert con.execute("SELECT forecast_date::VARCHAR, horizon_day, actual_sales, actual_customers "
                       "FROM ml.backtest_forecast").fetchall() == [("2015-07-01", 1, 10.0, 1.0)]
    assert con.execute("SELECT count(*) FROM ml.champion_pins").fetchone()[0] == 0
    # and the upgraded tables take new writes
    write_model_outputs(con, **model_outputs("baseline", "v3"), backtest=backtest_rows("baseline", "v3"))
    with pytest.raises(duckdb.ConstraintException):  # origin_date became NOT NULL
        con.execute("INSERT INTO ml.store_sales_forecast BY NAME SELECT 1 AS store_id, DATE '2015-08-01' AS "
                    "forecast_date, 'm' AS model, 'x' AS model_version, 1.0 AS sales_pred, 1.0 AS sales_lower, "
                    "1.0 AS sales_upper, now() AS created_at")
