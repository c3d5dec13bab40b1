"""Feature rows for arbitrary store-days, in the columns of ``marts.fct_store_daily_features``.

``POST /predict`` receives store-days that may or may not be in the feature mart (a what-if promo, a date
past the horizon). Their features are not computed here: the dbt macro ``store_day_features`` is the one
definition of the mart's columns, and dbt stores it, compiled for a request, in ``marts.serving_feature_query``
of the published copy. This module registers the request rows under the name that SQL reads and runs it. The
SQL evaluates the requested store-days together with every mart row of their stores (a requested row replacing
the mart's row of its store-day), so an unchanged store-day comes out exactly as in the mart.

The result goes through :func:`forecasting.features.prepare_frame` and then a model's ``predict``. A model that
forecasts from each store's recent history (the LSTM) also gets :func:`forecast_context`: each requested store's
forecast origin and the mart's rows around it.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd

from forecasting.features import FEATURE_TABLE

QUERY_TABLE = "marts.serving_feature_query"
KEY = ["store_id", "sale_date"]


def _request_frame(rows: pd.DataFrame) -> pd.DataFrame:
    """Request rows (store_id, sale_date, is_open, is_promo, state_holiday, is_school_holiday) with ``row_idx``,
    typed for the feature SQL (which fills missing values by the mart's rules)."""
    return pd.DataFrame({
        "row_idx": np.arange(len(rows), dtype="int64"),
        "store_id": pd.to_numeric(rows["store_id"]).astype("int64").to_numpy(),
        "sale_date": pd.to_datetime(rows["sale_date"]).dt.normalize().to_numpy(),
        "is_open": rows["is_open"].astype("boolean").to_numpy(),
        "is_promo": rows["is_promo"].astype("boolean").to_numpy(),
        "state_holiday": rows["state_holiday"].astype("string").to_numpy(),
        "is_school_holiday": rows["is_school_holiday"].astype("boolean").to_numpy(),
    })


def build_feature_rows(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame) -> pd.DataFrame:
    """Feature rows (the mart's columns, one per input row, in input order) for ``rows`` on a connection to
    the (published) warehouse. ``rows``: store_id, sale_date, is_open, is_promo, state_holiday,
    is_school_holiday. A requested row has is_history false, sales and customers NULL, row_source 'request'.

    The request is one scenario: its rows replace the mart's rows of the same store-days and are each
    other's neighbours. A store-day requested more than once is evaluated in one pass per occurrence
    (:func:`request_passes`), so each occurrence gets the features of its own values.
    """
    [(relation, sql)] = con.execute(f"SELECT request_relation, feature_sql FROM {QUERY_TABLE}").fetchall()
    frame = _request_frame(rows)
    passes = []
    for in_pass, own in request_passes(frame):
        out = _run(con, relation, sql, frame[in_pass])
        passes.append(out[out["row_idx"].isin(frame["row_idx"][own])])
    out = passes[0] if len(passes) == 1 else pd.concat(passes).sort_values("row_idx")
    return out.drop(columns="row_idx").reset_index(drop=True)


def request_passes(rows: pd.DataFrame) -> list[tuple[np.ndarray, np.ndarray]]:
    """A request's scenarios, as (rows in the pass, rows the pass answers) masks over ``rows`` (store_id,
    sale_date): pass k holds the k-th occurrence of every store-day requested at least k times and the last
    occurrence of the others, and answers the k-th occurrences. One pass when no store-day repeats."""
    keys = rows[KEY].reset_index(drop=True)
    occurrence = keys.groupby(KEY, sort=False).cumcount().to_numpy()
    last = keys.groupby(KEY, sort=False)[KEY[0]].transform("size").to_numpy() - 1
    return [((occurrence == k) | ((last < k) & (occurrence == last)), occurrence == k)
            for k in range(int(occurrence.max(initial=0)) + 1)]


@dataclass(frozen=True)
class ForecastContext:
    """What a model that forecasts from each store's recent history (the LSTM) reads around a request."""

    origins: pd.Series  # store_id -> the store's forecast origin (see forecast_context)
    rows: pd.DataFrame  # the mart's rows of the requested stores from `days` before their origin to their last day


def forecast_context(con: duckdb.DuckDBPyConnection, rows: pd.DataFrame, days: int) -> ForecastContext:
    """Each requested store's forecast origin, and the feature mart's rows of that store from ``days`` before it
    to the store's last requested day, on a connection to the (published) warehouse.

    A store's origin is the first day after the mart's history, or its first requested day when that is
    earlier: days of the plan and after it are forecast from the whole history (as the pipeline's forecast is),
    days inside the history from the history before the store's first requested day (a backtest from there).
    """
    dates = pd.DataFrame({"store_id": pd.to_numeric(rows["store_id"]).astype("int64").to_numpy(),
                          "sale_date": pd.to_datetime(rows["sale_date"]).dt.normalize().to_numpy()})
    span = dates.groupby("store_id")["sale_date"].agg(["min", "max"])
    [(history_end,)] = con.execute(f"SELECT max(sale_date) FROM {FEATURE_TABLE} WHERE is_history").fetchall()
    origins = span["min"]
    if history_end is not None:
        after_history = pd.Timestamp(history_end) + pd.Timedelta(days=1)
        origins = origins.where(origins < after_history, after_history)
    first = origins - pd.Timedelta(days=days)
    found = con.execute(f"""
        SELECT f.* FROM {FEATURE_TABLE} AS f
        JOIN (SELECT unnest(?::BIGINT[]) AS store_id, unnest(?::DATE[]) AS first_day, unnest(?::DATE[]) AS last_day)
          AS b ON f.store_id = b.store_id AND f.sale_date BETWEEN b.first_day AND b.last_day
        ORDER BY f.store_id, f.sale_date""",
        [span.index.tolist(), first.dt.date.tolist(), span["max"].dt.date.tolist()]).df()
    return ForecastContext(origins=origins.rename("origin"), rows=found)


def _run(con: duckdb.DuckDBPyConnection, relation: str, sql: str, frame: pd.DataFrame) -> pd.DataFrame:
    con.register(relation, frame)
    try:
        return con.execute(sql).df()
    finally:
        con.unregister(relation)
