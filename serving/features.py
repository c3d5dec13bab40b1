"""Feature rows for arbitrary store-days, in the columns of ``marts.fct_store_daily_features``.

``POST /predict`` receives store-days that may or may not be in the feature mart (a what-if promo, a date
past the horizon). Their features are not computed here: the dbt macro ``store_day_features`` is the one
definition of the mart's columns, and dbt stores it, compiled for a request, in ``marts.serving_feature_query``
of the published copy. This module registers the request rows under the name that SQL reads and runs it. The
SQL evaluates the requested store-days together with every mart row of their stores (a requested row replacing
the mart's row of its store-day), so an unchanged store-day comes out exactly as in the mart.

The result goes through :func:`forecasting.features.prepare_frame` and then a model's ``predict``.
"""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd

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
    other's neighbours. A store-day requested more than once is evaluated in one pass per occurrence: pass k
    holds the k-th occurrence of every store-day requested at least k times and the last occurrence of the
    others, so each occurrence gets the features of its own values.
    """
    [(relation, sql)] = con.execute(f"SELECT request_relation, feature_sql FROM {QUERY_TABLE}").fetchall()
    frame = _request_frame(rows)
    occurrence = frame.groupby(KEY, sort=False).cumcount().to_numpy()
    last = frame.groupby(KEY, sort=False)["row_idx"].transform("size").to_numpy() - 1
    passes = []
    for k in range(int(occurrence.max(initial=0)) + 1):
        in_pass = (occurrence == k) | ((last < k) & (occurrence == last))
        out = _run(con, relation, sql, frame[in_pass])
        passes.append(out[out["row_idx"].isin(frame["row_idx"][occurrence == k])])
    out = passes[0] if len(passes) == 1 else pd.concat(passes).sort_values("row_idx")
    return out.drop(columns="row_idx").reset_index(drop=True)


def _run(con: duckdb.DuckDBPyConnection, relation: str, sql: str, frame: pd.DataFrame) -> pd.DataFrame:
    con.register(relation, frame)
    try:
        return con.execute(sql).df()
    finally:
        con.unregister(relation)
