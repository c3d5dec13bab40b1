"""Seasonal-median baseline.

Forecast = median sales (and customers) per store x day_of_week x is_promo over the 91 days before the training
cut (open days with sales > 0), read from the dbt statistics of that cut (``marts.agg_store_sales_stats`` via
:class:`forecasting.features.StoreStats`).  Fallbacks, in order: store x day_of_week (quarter), store (quarter),
store (year), median over stores.  Closed days -> 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd

from forecasting.features import StoreStats, stats_lookup, tabular_training_rows
from forecasting.models import prediction_frame

DEFAULT_PARAMS: dict = {}
FAST_PARAMS: dict = {}
ARTIFACT = "model.joblib"


@dataclass
class BaselineModel:
    params: dict
    stats: StoreStats


def fit(train_df: pd.DataFrame, params: dict | None = None, stats: StoreStats | None = None) -> BaselineModel:
    rows = tabular_training_rows(train_df, stats)
    if rows.empty:
        raise ValueError("baseline.fit: no open history rows with sales > 0")
    return BaselineModel(params={**DEFAULT_PARAMS, **(params or {})}, stats=stats)


def predict(fitted: BaselineModel, context_df: pd.DataFrame | None, target_df: pd.DataFrame) -> pd.DataFrame:
    """``context_df`` is unused (the medians are those of the training cut)."""
    keys = target_df[["store_id", "day_of_week", "is_promo"]].reset_index(drop=True).copy()
    keys["is_promo"] = keys["is_promo"].astype(bool)
    st = fitted.stats
    levels = [
        (st.store_dow_promo, ["store_id", "day_of_week", "is_promo"], "quarter"),
        (st.store_dow, ["store_id", "day_of_week"], "quarter"),
        (st.store, ["store_id"], "quarter"),
        (st.store, ["store_id"], "year"),
    ]
    out = {}
    for target in ("sales", "customers"):
        value = np.full(len(keys), np.nan)
        for table, cols, window in levels:
            hit = stats_lookup(keys, table, cols)[f"{target}_median_{window}"].to_numpy(float)
            value = np.where(np.isnan(value), hit, value)
        out[target] = np.where(np.isnan(value), st.global_defaults[f"{target}_median_year"], value)
    return prediction_frame(target_df, out["sales"], out["customers"])


def save(fitted: BaselineModel, directory: str | Path) -> Path:
    path = Path(directory) / ARTIFACT
    joblib.dump(fitted, path)
    return path


def load(directory: str | Path) -> BaselineModel:
    return joblib.load(Path(directory) / ARTIFACT)
