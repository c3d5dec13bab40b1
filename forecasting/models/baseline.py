"""Seasonal-median baseline.

Forecast = median sales (and customers) per store x day_of_week x is_promo over the last ``recent_days`` of the
training history (open days with sales > 0).  Fallbacks, in order: store x day_of_week, store (recent window),
store (whole training history), median over stores.  Closed days -> 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from forecasting.models import prediction_frame

DEFAULT_PARAMS: dict = {"recent_days": 91}
FAST_PARAMS: dict = {"recent_days": 91}
ARTIFACT = "model.joblib"


@dataclass
class BaselineModel:
    params: dict
    tables: list  # [(keys, DataFrame indexed by keys with columns sales, customers)], most specific first
    global_median: dict
    train_end: pd.Timestamp


def _medians(d: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    return d.groupby(keys)[["sales", "customers"]].median()


def fit(train_df: pd.DataFrame, params: dict | None = None) -> BaselineModel:
    p = {**DEFAULT_PARAMS, **(params or {})}
    hist = train_df.loc[train_df["is_history"]] if "is_history" in train_df.columns else train_df
    d = hist.loc[hist["is_open"].astype(bool) & (hist["sales"] > 0), ["store_id", "sale_date", "day_of_week", "is_promo", "sales", "customers"]].copy()
    if d.empty:
        raise ValueError("baseline.fit: no open history rows with sales > 0")
    d["is_promo"] = d["is_promo"].astype(bool)
    end = pd.Timestamp(d["sale_date"].max())
    recent = d.loc[d["sale_date"] > end - pd.Timedelta(days=int(p["recent_days"]))]
    tables = [
        (["store_id", "day_of_week", "is_promo"], _medians(recent, ["store_id", "day_of_week", "is_promo"])),
        (["store_id", "day_of_week"], _medians(recent, ["store_id", "day_of_week"])),
        (["store_id"], _medians(recent, ["store_id"])),
        (["store_id"], _medians(d, ["store_id"])),
    ]
    glob = {"sales": float(d["sales"].median()), "customers": float(d["customers"].median())}
    return BaselineModel(params=p, tables=tables, global_median=glob, train_end=end)


def predict(fitted: BaselineModel, context_df: pd.DataFrame | None, target_df: pd.DataFrame) -> pd.DataFrame:
    """``context_df`` is unused (the medians come from the fitted training window)."""
    keys = target_df[["store_id", "day_of_week", "is_promo"]].reset_index(drop=True).copy()
    keys["is_promo"] = keys["is_promo"].astype(bool)
    sales = np.full(len(keys), np.nan)
    cust = np.full(len(keys), np.nan)
    for cols, table in fitted.tables:
        idx = pd.MultiIndex.from_frame(keys[cols]) if len(cols) > 1 else pd.Index(keys[cols[0]])
        hit = table.reindex(idx)
        need = np.isnan(sales)
        sales[need] = hit["sales"].to_numpy(float)[need]
        need_c = np.isnan(cust)
        cust[need_c] = hit["customers"].to_numpy(float)[need_c]
    sales[np.isnan(sales)] = fitted.global_median["sales"]
    cust[np.isnan(cust)] = fitted.global_median["customers"]
    return prediction_frame(target_df, sales, cust)


def save(fitted: BaselineModel, directory: str | Path) -> Path:
    path = Path(directory) / ARTIFACT
    joblib.dump(fitted, path)
    return path


def load(directory: str | Path) -> BaselineModel:
    return joblib.load(Path(directory) / ARTIFACT)
