"""Seasonal-median baseline.

Forecast = median sales (and customers) per store x day_of_week x is_promo over the 91 days before the training
cut (open days with sales > 0), read from the dbt statistics of that cut (``marts.agg_store_sales_stats`` via
:class:`forecasting.features.StoreStats`).  Fallbacks, in order: store x day_of_week (quarter), store (quarter),
store (year), median over stores.  Closed days -> 0.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from forecasting.features import StoreStats, stats_lookup, tabular_training_rows
from forecasting.protocol import BaseForecaster, prediction_frame

# (statistics table, its keys, window) in fallback order
_LEVELS = [("store_dow_promo", ["store_id", "day_of_week", "is_promo"], "quarter"),
           ("store_dow", ["store_id", "day_of_week"], "quarter"),
           ("store", ["store_id"], "quarter"),
           ("store", ["store_id"], "year")]


class BaselineForecaster(BaseForecaster):
    name = "baseline"

    def fit(self, history: pd.DataFrame, stats: StoreStats | None) -> BaselineForecaster:
        if tabular_training_rows(history, stats).empty:
            raise ValueError("baseline: no open history rows with sales > 0")
        self.stats = stats
        return self

    def predict(self, context: pd.DataFrame | None, target: pd.DataFrame) -> pd.DataFrame:
        """``context`` is unused (the medians are those of the training cut)."""
        keys = target[["store_id", "day_of_week", "is_promo"]].reset_index(drop=True).copy()
        keys["is_promo"] = keys["is_promo"].astype(bool)
        out = {}
        for column in ("sales", "customers"):
            value = np.full(len(keys), np.nan)
            for table, cols, window in _LEVELS:
                hit = stats_lookup(keys, getattr(self.stats, table), cols)[f"{column}_median_{window}"].to_numpy(float)
                value = np.where(np.isnan(value), hit, value)
            out[column] = np.where(np.isnan(value), self.stats.global_defaults[f"{column}_median_year"], value)
        return prediction_frame(target, out["sales"], out["customers"])
