"""The dashboard's reads of the published copy. Every loader is keyed by the published version (and its
arguments); ``_con`` is not hashed. A loader that misses runs on the connection that read the version id, so a
page never mixes versions. Latest and champion come from ``marts.dim_model_versions`` only."""

from __future__ import annotations

import pandas as pd
import streamlit as st

ACCURACY_METRICS = ["rmspe", "rmse", "mae", "mape"]
VALIDATION = "validation"


def frame(con, sql: str, params: list | None = None) -> pd.DataFrame:
    return con.execute(sql, params or []).df()


@st.cache_data(max_entries=8, show_spinner=False)
def load_overview(version_id: str, _con) -> dict:
    stores = frame(_con, "SELECT * FROM marts.dim_stores ORDER BY store_id")
    accuracy = frame(_con, f"""
        SELECT model, model_version, trained_at, {", ".join(ACCURACY_METRICS)}
        FROM marts.rpt_model_accuracy WHERE split = 'validation' ORDER BY trained_at""")
    # each model's latest version, the champion first (dbt's rank: by recency-weighted RMSPE)
    latest = frame(_con, """
        SELECT model, model_version, trained_at, validation_rmspe, weighted_rmspe, mean_rmspe, interval_level, rank, is_champion
        FROM marts.dim_model_versions WHERE is_latest ORDER BY rank""")
    insight_tables = [r[0] for r in _con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = current_database() "
        "AND schema_name = 'marts' AND table_name LIKE 'insight\\_%' ESCAPE '\\' ORDER BY 1").fetchall()]
    published_at = _con.execute("SELECT published_at FROM meta.publication").fetchall()[0][0]
    return {"stores": stores, "accuracy": accuracy, "latest": latest, "insight_tables": insight_tables,
            "published_at": published_at}


@st.cache_data(max_entries=64, show_spinner=False)
def load_store(version_id: str, store_id: int, history_days: int, _con) -> dict:
    forecast = frame(_con, """
        SELECT forecast_date AS date, model, model_version, sales_pred, sales_lower, sales_upper, customers_pred
        FROM marts.fct_sales_forecast
        WHERE store_id = ? AND is_latest_version
        ORDER BY model, forecast_date""", [store_id])
    # the latest versions' past forecasts (every backtest fold) over the days shown
    backtest = frame(_con, """
        SELECT forecast_date AS date, model, split, sales_pred, sales_lower, sales_upper, actual_sales
        FROM marts.fct_backtest_forecast
        WHERE store_id = ? AND is_latest_version
          AND forecast_date > (SELECT max(sale_date) FROM marts.fct_store_daily_features
                               WHERE store_id = ? AND is_history) - ?
        ORDER BY model, forecast_date""", [store_id, store_id, history_days])
    accuracy = frame(_con, """
        SELECT model, store_rmspe, chain_rmspe, worst_rank, interval_coverage, fold_start, fold_end
        FROM marts.rpt_store_accuracy
        WHERE store_id = ? AND is_latest_version AND split = ?""", [store_id, VALIDATION])
    monthly_forecast = frame(_con, """
        SELECT month_start, model, sales_pred, sales_lower, sales_upper, n_days,
               n_days < dayofmonth(last_day(month_start)) AS is_partial,
               dayofmonth(last_day(month_start)) AS days_in_month
        FROM marts.fct_sales_forecast_monthly
        WHERE store_id = ? AND is_latest_version AND is_served
        ORDER BY model, month_start""", [store_id])
    actual = frame(_con, """
        SELECT sale_date AS date, sales, customers, is_open, is_promo
        FROM marts.fct_store_daily_features
        WHERE store_id = ? AND is_history
          AND sale_date > (SELECT max(sale_date) FROM marts.fct_store_daily_features
                           WHERE store_id = ? AND is_history) - ?
        ORDER BY sale_date""", [store_id, store_id, history_days])
    monthly_actual = frame(_con, """
        SELECT month_start, sales, n_days, n_days < dayofmonth(last_day(month_start)) AS is_partial,
               dayofmonth(last_day(month_start)) AS days_in_month
        FROM marts.agg_store_monthly WHERE store_id = ? ORDER BY month_start""", [store_id])
    return {"forecast": forecast, "backtest": backtest, "accuracy": accuracy, "actual": actual,
            "monthly_forecast": monthly_forecast, "monthly_actual": monthly_actual}


@st.cache_data(max_entries=8, show_spinner=False)
def load_chain(version_id: str, _con) -> dict:
    """The champion's view of the chain: daily totals, each store's expected change, the least accurate stores."""
    daily = frame(_con, """
        WITH champion AS (SELECT model, model_version FROM marts.dim_model_versions WHERE is_champion)
        SELECT forecast_date AS date, 'forecast' AS series, sum(sales_pred) AS sales,
               sum(sales_lower) AS sales_lower, sum(sales_upper) AS sales_upper
        FROM marts.fct_sales_forecast JOIN champion USING (model, model_version)
        GROUP BY ALL
        UNION ALL
        SELECT sale_date, 'actual', sum(sales), NULL, NULL
        FROM marts.fct_store_daily_features
        WHERE is_history AND sale_date > (SELECT max(sale_date) - 120 FROM marts.fct_store_daily_features
                                          WHERE is_history)
        GROUP BY ALL
        ORDER BY 1""")
    # forecast over the horizon vs the same number of days of actuals just before it, per store
    change = frame(_con, """
        WITH champion AS (SELECT model, model_version FROM marts.dim_model_versions WHERE is_champion),
        fc AS (
            SELECT store_id, sum(sales_pred) AS forecast_sales, min(forecast_date) AS first_day,
                   cast(max(forecast_date) - min(forecast_date) + 1 AS INTEGER) AS n_days
            FROM marts.fct_sales_forecast JOIN champion USING (model, model_version)
            GROUP BY store_id),
        recent AS (
            SELECT fc.store_id, sum(d.sales) AS recent_sales
            FROM fc JOIN marts.fct_store_daily_features AS d
              ON d.store_id = fc.store_id AND d.is_history
             AND d.sale_date >= fc.first_day - fc.n_days AND d.sale_date < fc.first_day
            GROUP BY fc.store_id)
        SELECT fc.store_id, s.store_type, s.assortment, fc.forecast_sales, recent.recent_sales,
               fc.forecast_sales - recent.recent_sales AS change,
               100 * (fc.forecast_sales / nullif(recent.recent_sales, 0) - 1) AS change_pct
        FROM fc LEFT JOIN recent USING (store_id) LEFT JOIN marts.dim_stores AS s USING (store_id)
        ORDER BY abs(change_pct) DESC NULLS LAST""")
    worst = frame(_con, """
        SELECT a.store_id, s.store_type, s.assortment, a.model, a.store_rmspe, a.chain_rmspe,
               a.interval_coverage, a.worst_rank
        FROM marts.rpt_store_accuracy AS a LEFT JOIN marts.dim_stores AS s USING (store_id)
        WHERE a.is_champion AND a.split = ?
        ORDER BY a.worst_rank""", [VALIDATION])
    return {"daily": daily, "change": change, "worst": worst}


@st.cache_data(max_entries=16, show_spinner=False)
def load_insight(version_id: str, table: str, _con) -> pd.DataFrame:
    return frame(_con, f'SELECT * FROM marts."{table}" LIMIT 1000')
