"""Histogram gradient boosting (scikit-learn ``HistGradientBoostingRegressor``) on log sales of open days.

A scikit-learn ``Pipeline``: ``ColumnTransformer`` (ordinal-encode the categoricals -- store_type, assortment,
state_holiday and any extra categorical mart column such as ``state_group`` -- and pass numerics, booleans and
the leakage-free store statistics of :mod:`forecasting.features` through) followed by a
``HistGradientBoostingRegressor`` with native categorical splits.  The target is the log deviation of sales
from a store statistic (``target_offset``, by default the last year's store x weekday x promo mean
``store_dow_promo_log_sales_mean_year`` of dbt's statistics at the training cut), like the random forest's
``residual`` target.  Customers are the sales forecast divided by the store's sales per customer before the cut
(one boosted model instead of two).

Extra calendar columns of the mart (see :func:`forecasting.features.extra_feature_columns`) are used when
present; the fitted model remembers its columns, so a forecast frame must carry the same ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OrdinalEncoder

from forecasting.features import (
    BOOLEAN_FEATURES,
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    STORE_STAT_FEATURES,
    StoreStats,
    extra_feature_columns,
    tabular_design,
    tabular_training_rows,
)
from forecasting.models import prediction_frame

DEFAULT_PARAMS: dict = {
    "max_iter": 400,
    "learning_rate": 0.1,
    "max_leaf_nodes": 63,
    "min_samples_leaf": 40,
    "l2_regularization": 1.0,
    "max_bins": 255,
    "random_state": 42,
    # the store statistic the target is a deviation from (log sales; see forecasting.features.STORE_STAT_FEATURES):
    # the last year's store x weekday x promo mean beat the 3-year one on every real-data fold (bench/README.md)
    "target_offset": "store_dow_promo_log_sales_mean_year",
    # OpenMP threads for fit/predict.  1 by default: on a shared 2-core machine OpenMP's busy-waiting threads
    # collapse under contention (measured: 50 s with 2 threads vs 5 s with 1 on the default data while other
    # processes ran); None = scikit-learn's default (all cores), for a dedicated machine.
    "n_threads": 1,
    "verbose": 0,
}
FAST_PARAMS: dict = {**DEFAULT_PARAMS, "max_iter": 30, "max_leaf_nodes": 15, "min_samples_leaf": 10}
ARTIFACT = "model.joblib"


@dataclass
class HistGradientBoostingModel:
    params: dict
    pipeline: Pipeline
    stats: StoreStats
    numeric: list[str]
    categorical: list[str]

    @property
    def feature_columns(self) -> list[str]:
        return self.numeric + self.categorical


def _columns(frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    extra = extra_feature_columns(frame)
    numeric = [c for c in NUMERIC_FEATURES + BOOLEAN_FEATURES if c in frame.columns] + STORE_STAT_FEATURES + extra["numeric"]
    categorical = [c for c in CATEGORICAL_FEATURES if c in frame.columns] + extra["categorical"]
    return numeric, categorical


def build_pipeline(params: dict, numeric: list[str], categorical: list[str]) -> Pipeline:
    pre = ColumnTransformer(
        [
            ("cat", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                   encoded_missing_value=np.nan, dtype=np.float64), categorical),
            ("num", "passthrough", numeric),
        ],
        sparse_threshold=0.0,
        verbose_feature_names_out=False,
    )
    hgb = HistGradientBoostingRegressor(
        loss="squared_error",
        learning_rate=float(params["learning_rate"]),
        max_iter=int(params["max_iter"]),
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        l2_regularization=float(params["l2_regularization"]),
        max_bins=int(params["max_bins"]),
        categorical_features=list(range(len(categorical))),
        early_stopping=False,
        random_state=int(params["random_state"]),
        verbose=int(params.get("verbose", 0)),
    )
    return Pipeline([("features", pre), ("boosting", hgb)])


def fit(train_df: pd.DataFrame, params: dict | None = None, stats: StoreStats | None = None) -> HistGradientBoostingModel:
    p = {**DEFAULT_PARAMS, **(params or {})}
    rows = tabular_training_rows(train_df, stats)
    numeric, categorical = _columns(rows)
    x = tabular_design(rows, stats, numeric, categorical)
    y = np.log1p(rows["sales"].to_numpy(float)) - x[p["target_offset"]].to_numpy()
    pipe = build_pipeline(p, numeric, categorical)
    with threadpool_limits(p.get("n_threads")):
        pipe.fit(x, y)
    return HistGradientBoostingModel(params=p, pipeline=pipe, stats=stats, numeric=numeric, categorical=categorical)


def predict(fitted: HistGradientBoostingModel, context_df: pd.DataFrame | None, target_df: pd.DataFrame) -> pd.DataFrame:
    """``context_df`` is unused: all features are in the target rows plus the fitted store statistics."""
    target = target_df.reset_index(drop=True)
    is_open = target["is_open"].astype("boolean").fillna(True).to_numpy(bool)
    sales = np.zeros(len(target))
    cust = np.zeros(len(target))
    if is_open.any():
        x = tabular_design(target.loc[is_open], fitted.stats, fitted.numeric, fitted.categorical)
        with threadpool_limits(fitted.params.get("n_threads")):
            log_sales = fitted.pipeline.predict(x) + x[fitted.params["target_offset"]].to_numpy()
        sales[is_open] = np.expm1(np.clip(log_sales, 0, 20))
        spc = np.clip(x["store_sales_per_customer"].to_numpy(float), 1.0, None)
        cust[is_open] = sales[is_open] / spc
    return prediction_frame(target, sales, cust)


def save(fitted: HistGradientBoostingModel, directory: str | Path) -> Path:
    path = Path(directory) / ARTIFACT
    joblib.dump(fitted, path, compress=3)
    return path


def load(directory: str | Path) -> HistGradientBoostingModel:
    return joblib.load(Path(directory) / ARTIFACT)
