"""Feature rows for arbitrary store-days, in the columns of ``marts.fct_store_daily_features``.

``POST /predict`` receives store-days that may or may not be in the feature mart (a what-if promo, a date
past the horizon). This module builds their feature rows with the same rules as the dbt models
(``int_calendar``, ``int_stores_enriched``, ``int_store_day_features``), in one DuckDB query:

* calendar columns from the date (ISO day of week 1=Mon..7=Sun, ISO week, ...);
* store attributes, competition and Promo2 state from ``marts.dim_stores``;
* distances (capped at 14 days) to the nearest state holiday / closed day of the same store, over the
  requested rows together with the mart's own rows of that store within 14 days of them (a requested
  row replaces the mart's row for the same store-day).

The result goes through :func:`forecasting.features.prepare_frame` and then a model's ``predict``.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

DISTANCE_CAP_DAYS = 14
REQUEST_COLUMNS = ["row_idx", "store_id", "sale_date", "is_open", "is_promo", "state_holiday", "is_school_holiday"]
# The columns of marts.fct_store_daily_features (shared contract), in order.
FEATURE_COLUMNS = [
    "store_id", "sale_date", "is_history", "sales", "customers", "is_open", "is_promo", "state_holiday",
    "is_state_holiday", "is_school_holiday", "day_of_week", "day_of_month", "month", "year", "week_of_year",
    "day_of_year", "store_type", "assortment", "competition_distance_m", "is_competition_open",
    "months_since_competition_open", "is_promo2_active", "is_promo2_month", "days_since_state_holiday",
    "days_until_state_holiday", "days_since_closed", "days_until_closed",
]
# What the store relation must provide (the columns of marts.dim_stores used here).
STORE_COLUMNS = [
    "store_id", "store_type", "assortment", "competition_distance_m", "competition_open_since_month",
    "competition_open_since_year", "competition_open_date", "is_in_promo2", "promo2_start_date", "promo_interval",
]


def feature_rows_sql(days: str, stores: str, context: str | None = None, cap: int = DISTANCE_CAP_DAYS) -> str:
    """SQL for the feature rows of relation ``days`` (columns REQUEST_COLUMNS), one row per input row.

    Output: ``row_idx`` followed by FEATURE_COLUMNS (is_history false, sales/customers NULL), ordered by
    row_idx. ``stores`` provides STORE_COLUMNS; ``context`` (optional) is a relation with ``store_id,
    sale_date, is_open, state_holiday`` whose rows near the requested ones enter the distance features.
    Relation names are trusted identifiers (never user input); values come from the relations.
    """
    cap = int(cap)
    context_cte = ""
    context_union = ""
    if context:
        context_cte = f""",
context_days AS (
    SELECT CAST(NULL AS BIGINT) AS row_idx, c.store_id, c.sale_date, coalesce(c.is_open, true) AS is_open,
           c.state_holiday
    FROM {context} AS c
    WHERE c.store_id IN (SELECT DISTINCT store_id FROM requested)
      AND c.sale_date BETWEEN (SELECT min(sale_date) FROM requested) - {cap}
                          AND (SELECT max(sale_date) FROM requested) + {cap}
      AND NOT EXISTS (SELECT 1 FROM requested AS r WHERE r.store_id = c.store_id AND r.sale_date = c.sale_date)
)"""
        context_union = "UNION ALL SELECT * FROM context_days"
    return f"""
WITH requested AS (
    SELECT CAST(row_idx AS BIGINT) AS row_idx,
           CAST(store_id AS INTEGER) AS store_id,
           CAST(sale_date AS DATE) AS sale_date,
           coalesce(CAST(is_open AS BOOLEAN), true) AS is_open,
           coalesce(CAST(is_promo AS BOOLEAN), false) AS is_promo,
           CASE WHEN CAST(state_holiday AS VARCHAR) IN ('a', 'b', 'c') THEN CAST(state_holiday AS VARCHAR)
                ELSE '0' END AS state_holiday,
           coalesce(CAST(is_school_holiday AS BOOLEAN), false) AS is_school_holiday
    FROM {days}
){context_cte},
all_days AS (
    SELECT row_idx, store_id, sale_date, is_open, state_holiday FROM requested
    {context_union}
),
event_dates AS (
    SELECT row_idx,
           max(CASE WHEN state_holiday <> '0' THEN sale_date END) OVER store_past AS last_state_holiday_date,
           min(CASE WHEN state_holiday <> '0' THEN sale_date END) OVER store_future AS next_state_holiday_date,
           max(CASE WHEN NOT is_open THEN sale_date END) OVER store_past AS last_closed_date,
           min(CASE WHEN NOT is_open THEN sale_date END) OVER store_future AS next_closed_date
    FROM all_days
    WINDOW store_past AS (PARTITION BY store_id ORDER BY sale_date
                          RANGE BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW),
           store_future AS (PARTITION BY store_id ORDER BY sale_date
                            RANGE BETWEEN CURRENT ROW AND UNBOUNDED FOLLOWING)
),
features AS (
    SELECT
        r.row_idx,
        r.store_id,
        r.sale_date,
        false AS is_history,
        CAST(NULL AS DOUBLE) AS sales,
        CAST(NULL AS DOUBLE) AS customers,
        r.is_open,
        r.is_promo,
        r.state_holiday,
        r.state_holiday <> '0' AS is_state_holiday,
        r.is_school_holiday,
        CAST(isodow(r.sale_date) AS INTEGER) AS day_of_week,
        CAST(dayofmonth(r.sale_date) AS INTEGER) AS day_of_month,
        CAST(month(r.sale_date) AS INTEGER) AS month,
        CAST(year(r.sale_date) AS INTEGER) AS year,
        CAST(weekofyear(r.sale_date) AS INTEGER) AS week_of_year,
        CAST(dayofyear(r.sale_date) AS INTEGER) AS day_of_year,
        s.store_type,
        s.assortment,
        s.competition_distance_m,
        coalesce(s.competition_distance_m IS NOT NULL
                 AND (s.competition_open_date IS NULL OR r.sale_date >= s.competition_open_date), false)
            AS is_competition_open,
        CASE WHEN s.competition_distance_m IS NOT NULL AND r.sale_date >= s.competition_open_date
             THEN CAST(12 * (year(r.sale_date) - s.competition_open_since_year)
                       + (month(r.sale_date) - s.competition_open_since_month) AS INTEGER)
        END AS months_since_competition_open,
        coalesce(s.is_in_promo2 AND (s.promo2_start_date IS NULL OR r.sale_date >= s.promo2_start_date), false)
            AS is_promo2_active,
        s.promo_interval,
        ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][month(r.sale_date)]
            AS month_abbr,
        CAST(least(coalesce(r.sale_date - e.last_state_holiday_date, {cap}), {cap}) AS INTEGER)
            AS days_since_state_holiday,
        CAST(least(coalesce(e.next_state_holiday_date - r.sale_date, {cap}), {cap}) AS INTEGER)
            AS days_until_state_holiday,
        CAST(least(coalesce(r.sale_date - e.last_closed_date, {cap}), {cap}) AS INTEGER) AS days_since_closed,
        CAST(least(coalesce(e.next_closed_date - r.sale_date, {cap}), {cap}) AS INTEGER) AS days_until_closed
    FROM requested AS r
    JOIN event_dates AS e ON e.row_idx = r.row_idx
    LEFT JOIN {stores} AS s ON s.store_id = r.store_id
)
SELECT
    row_idx, store_id, sale_date, is_history, sales, customers, is_open, is_promo, state_holiday,
    is_state_holiday, is_school_holiday, day_of_week, day_of_month, month, year, week_of_year, day_of_year,
    store_type, assortment, competition_distance_m, is_competition_open, months_since_competition_open,
    is_promo2_active,
    coalesce(is_promo2_active AND contains(promo_interval, month_abbr), false) AS is_promo2_month,
    days_since_state_holiday, days_until_state_holiday, days_since_closed, days_until_closed
FROM features
ORDER BY row_idx
"""


def request_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Normalise request rows (store_id, sale_date, is_open, is_promo, state_holiday, is_school_holiday)."""
    out = pd.DataFrame({
        "row_idx": np.arange(len(rows), dtype="int64"),
        "store_id": pd.to_numeric(rows["store_id"]).astype("int64").to_numpy(),
        "sale_date": pd.to_datetime(rows["sale_date"]).dt.date.to_numpy(),
        "is_open": rows["is_open"].astype("boolean").to_numpy(),
        "is_promo": rows["is_promo"].astype("boolean").to_numpy(),
        "state_holiday": rows["state_holiday"].astype(str).to_numpy(),
        "is_school_holiday": rows["is_school_holiday"].astype("boolean").to_numpy(),
    })
    return out


def build_feature_rows(
    con: duckdb.DuckDBPyConnection,
    rows: pd.DataFrame,
    *,
    stores: str = "marts.dim_stores",
    context: str | None = "marts.fct_store_daily_features",
) -> pd.DataFrame:
    """Feature rows (FEATURE_COLUMNS, input order) for ``rows`` on a connection to the (published)
    warehouse. ``rows``: store_id, sale_date, is_open, is_promo, state_holiday, is_school_holiday."""
    frame = request_frame(rows)
    name = "__serving_request_days"
    con.register(name, frame)
    try:
        out = con.execute(feature_rows_sql(name, stores, context)).df()
    finally:
        con.unregister(name)
    if context is not None:
        out = _with_mart_extras(con, out, context)
    return out.drop(columns="row_idx")


def _with_mart_extras(con: duckdb.DuckDBPyConnection, out: pd.DataFrame, context: str) -> pd.DataFrame:
    """Add the mart's columns beyond the contract (promo-run position, Easter distance, state group, ...).

    They are taken from the mart's row for the same store-day, so a plan day predicts exactly as the
    batch forecast did; a day outside the mart gets NULLs, which the model pipelines impute. What-if
    overrides of promo or holidays change the contract features above, not these.
    """
    extras = [c for c in con.sql(f"SELECT * FROM {context} LIMIT 0").columns
              if c not in FEATURE_COLUMNS and c not in out.columns]
    if not extras:
        return out
    name = "__serving_feature_rows"
    con.register(name, out)
    try:
        return con.execute(
            f"SELECT o.*, {', '.join(f'm.{c}' for c in extras)} FROM {name} o "
            f"LEFT JOIN {context} m ON m.store_id = o.store_id AND m.sale_date = o.sale_date "
            "ORDER BY o.row_idx").df()
    finally:
        con.unregister(name)
