"""Random forest on calendar / promo / store features plus leakage-free store statistics.

A scikit-learn ``Pipeline``: ``ColumnTransformer`` (median-impute numerics incl. store statistics, one-hot the
small categoricals store_type / assortment / state_holiday, pass booleans through) followed by a multi-output
``RandomForestRegressor`` on [log1p(sales), log1p(customers)] of open history days with sales > 0.

Store identity enters only through the store statistics of :mod:`forecasting.features` (computed from the
training cut), not through a one-hot of store ids.  With ``target="residual"`` (default) the forest learns the
log deviation from a store x weekday x promo mean (``target_offset``) and the store's mean log customers, which
lets shallow-ish trees spend their splits on promo/holiday/calendar effects instead of on store levels.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import joblib
import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

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
    # Tuned on the real data's backtest_2 fold (bench/tune.py; bench/README.md): max_features 0.3 / 0.5 / 0.7 and
    # min_samples_leaf 2 / 4 score alike, 0.3 fits fastest, and 100 trees beat 60.
    "n_estimators": 100,
    "max_depth": 24,
    "min_samples_leaf": 4,
    "max_features": 0.3,
    "max_samples": 150_000,  # rows per tree (int) or fraction (float); capped at the number of rows
    "target": "residual",  # "residual" (log deviation from store stats) or "log" (plain log1p)
    # the store statistic a "residual" sales target deviates from: the last year's store x weekday x promo mean
    # (backtest_2 on the real data: 0.114 against 0.123 with the 3-year mean; bench/README.md)
    "target_offset": "store_dow_promo_log_sales_mean_year",
    "n_jobs": -1,
    "random_state": 42,
    "verbose": 0,
}
FAST_PARAMS: dict = {**DEFAULT_PARAMS, "n_estimators": 10, "max_depth": 10, "max_samples": 5_000}
ARTIFACT = "model.joblib"


@dataclass
class RandomForestModel:
    params: dict
    pipeline: Pipeline
    stats: StoreStats
    feature_columns: list[str]
    numeric: list[str] | None = None  # None: the base lists (artifacts from before extra mart columns)
    categorical: list[str] | None = None


def feature_lists(frame: pd.DataFrame | None = None) -> tuple[list[str], list[str]]:
    """(numeric incl. store statistics and extra mart columns, categorical); base lists when ``frame`` is None."""
    extra = extra_feature_columns(frame) if frame is not None else {"numeric": [], "categorical": []}
    return NUMERIC_FEATURES + STORE_STAT_FEATURES + extra["numeric"], CATEGORICAL_FEATURES + extra["categorical"]


def build_pipeline(params: dict, numeric: list[str] | None = None, categorical: list[str] | None = None) -> Pipeline:
    base_num, base_cat = feature_lists()
    numeric = numeric or base_num
    categorical = categorical or base_cat
    pre = ColumnTransformer(
        [
            ("num", SimpleImputer(strategy="median", keep_empty_features=True), numeric),
            (
                "cat",
                OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32),
                categorical,
            ),
            ("bool", "passthrough", BOOLEAN_FEATURES),
        ],
        sparse_threshold=0.0,
    )
    rf = RandomForestRegressor(
        n_estimators=int(params["n_estimators"]),
        max_depth=params["max_depth"],
        min_samples_leaf=params["min_samples_leaf"],
        max_features=params["max_features"],
        max_samples=params["max_samples"],
        bootstrap=True,
        n_jobs=params["n_jobs"],
        random_state=params["random_state"],
        verbose=params.get("verbose", 0),
    )
    return Pipeline([("features", pre), ("forest", rf)])


def _design(frame: pd.DataFrame, stats: StoreStats, numeric: list[str] | None = None,
            categorical: list[str] | None = None) -> pd.DataFrame:
    base_num, base_cat = feature_lists()
    x = tabular_design(frame, stats, numeric or base_num, categorical or base_cat)
    for c in BOOLEAN_FEATURES:
        x[c] = frame[c].astype("boolean").fillna(False).astype("float32").to_numpy()
    return x


def _offsets(x: pd.DataFrame, params: dict) -> np.ndarray:
    if params["target"] == "residual":
        return np.column_stack([x[params["target_offset"]].to_numpy(), x["store_log_customers_mean"].to_numpy()])
    if params["target"] == "log":
        return np.zeros((len(x), 2))
    raise ValueError(f"unknown target mode {params['target']!r}")


def fit(train_df: pd.DataFrame, params: dict | None = None, stats: StoreStats | None = None) -> RandomForestModel:
    p = {**DEFAULT_PARAMS, **(params or {})}
    rows = tabular_training_rows(train_df, stats)
    numeric, categorical = feature_lists(rows)
    x = _design(rows, stats, numeric, categorical)
    y = np.column_stack([np.log1p(rows["sales"].to_numpy(float)), np.log1p(rows["customers"].fillna(0).to_numpy(float))])
    y = y - _offsets(x, p)
    ms = p["max_samples"]
    if isinstance(ms, int) and ms >= len(rows):
        ms = None
    pipe = build_pipeline({**p, "max_samples": ms}, numeric, categorical)
    t0 = time.perf_counter()
    pipe.fit(x, y)
    if p.get("verbose"):
        print(f"[random_forest] fitted {p['n_estimators']} trees on {len(rows):,} rows in {time.perf_counter() - t0:.1f}s", flush=True)
    return RandomForestModel(params=p, pipeline=pipe, stats=stats, feature_columns=list(x.columns),
                             numeric=numeric, categorical=categorical)


def predict(fitted: RandomForestModel, context_df: pd.DataFrame | None, target_df: pd.DataFrame) -> pd.DataFrame:
    """``context_df`` is unused: all features are in the target rows plus the fitted store statistics."""
    target = target_df.reset_index(drop=True)
    is_open = target["is_open"].astype("boolean").fillna(True).to_numpy(bool)
    sales = np.zeros(len(target))
    cust = np.zeros(len(target))
    if is_open.any():
        x = _design(target.loc[is_open], fitted.stats, fitted.numeric, fitted.categorical)
        pred = fitted.pipeline.predict(x).reshape(len(x), -1) + _offsets(x, fitted.params)
        sales[is_open] = np.expm1(pred[:, 0])
        cust[is_open] = np.expm1(pred[:, 1])
    return prediction_frame(target, sales, cust)


def feature_importances(fitted: RandomForestModel) -> pd.Series:
    names = fitted.pipeline.named_steps["features"].get_feature_names_out()
    imp = fitted.pipeline.named_steps["forest"].feature_importances_
    return pd.Series(imp, index=names).sort_values(ascending=False)


def save(fitted: RandomForestModel, directory: str | Path) -> Path:
    path = Path(directory) / ARTIFACT
    joblib.dump(fitted, path, compress=3)
    return path


def load(directory: str | Path) -> RandomForestModel:
    return joblib.load(Path(directory) / ARTIFACT)
