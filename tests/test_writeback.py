import duckdb
import pandas as pd
import pytest

from warehouse.writeback import WriteBackError, write_model_outputs


def model_outputs(model: str, version: str, n_stores: int = 3, n_days: int = 4, level: float = 100.0):
    days = pd.date_range("2015-08-01", periods=n_days, freq="D")
    forecasts = pd.DataFrame(
        [(s, d, model, version, level, level * 0.8, level * 1.2, level / 10)
         for s in range(1, n_stores + 1) for d in days],
        columns=["store_id", "forecast_date", "model", "model_version", "sales_pred", "sales_lower",
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
                    ("model_version", "VARCHAR"), ("sales_pred", "DOUBLE"), ("sales_lower", "DOUBLE"),
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
    days = pd.date_range("2015-07-01", periods=n_days, freq="D")
    return pd.DataFrame(
        [(model, version, split, s, d, i + 1, True, 110.0, 11.0, level, level * 0.8, level * 1.2, None)
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
    assert cols[:6] == [("model", "VARCHAR"), ("model_version", "VARCHAR"), ("split", "VARCHAR"),
                        ("store_id", "INTEGER"), ("sale_date", "DATE"), ("horizon_day", "INTEGER")]


def test_backtest_forecast_contract_is_enforced(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=backtest_rows("baseline", "v1"))
    repeated = backtest_rows("baseline", "v1")
    with pytest.raises(WriteBackError, match="repeat the key"):
        write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=pd.concat([repeated, repeated.head(1)]))
    with pytest.raises(WriteBackError, match="missing from the registry"):
        write_model_outputs(con, **model_outputs("baseline", "v1"), backtest=backtest_rows("lstm", "v9"))
    assert con.execute("SELECT count(*), max(sales_pred) FROM ml.backtest_forecast").fetchone() == (12, 100.0)
