"""LightGBM gradient-boosted trees (``lightgbm.LGBMRegressor``) on log sales of open days.

The same design as :mod:`forecasting.models.hist_gradient_boosting`: ``ColumnTransformer`` ordinal-encodes the
categoricals (LightGBM's native categorical splits) and passes numerics, booleans, store statistics and recent
sales through; the target is the log deviation from a store statistic (:mod:`forecasting.models.tabular`).
Customers are the sales forecast divided by the store's sales per customer before the cut.  What LightGBM adds
over scikit-learn's histogram boosting: row and column subsampling per tree, and with it ``n_seeds``: the mean of
that many boosters that differ only in their seed (the subsampling makes single boosters' scores vary; the
backtests in bench/README.md, "Features and LightGBM", measured both).
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import lightgbm
import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.pipeline import Pipeline

from forecasting.models.tabular import TabularForecaster, ordinal_categoricals_first


class SeedAveragedLGBM(RegressorMixin, BaseEstimator):
    """``n_seeds`` ``LGBMRegressor(**params)`` with the seeds ``random_state``, ``random_state + 1``, ..; predicts
    their mean.  ``n_parallel`` boosters fit at a time, each on its own thread (LightGBM releases the GIL; with one
    OpenMP thread per booster the forecasts are the same as fitted one after another)."""

    def __init__(self, params: dict | None = None, n_seeds: int = 1, random_state: int = 0, n_parallel: int = 1):
        self.params = params
        self.n_seeds = n_seeds
        self.random_state = random_state
        self.n_parallel = n_parallel

    def fit(self, x, y, sample_weight=None, categorical_feature="auto") -> "SeedAveragedLGBM":
        def fit_one(seed: int) -> lightgbm.LGBMRegressor:
            return lightgbm.LGBMRegressor(random_state=seed, **(self.params or {})).fit(
                x, y, sample_weight=sample_weight, categorical_feature=categorical_feature)

        seeds = [self.random_state + i for i in range(self.n_seeds)]
        with ThreadPoolExecutor(max_workers=max(1, min(self.n_parallel, self.n_seeds))) as pool:
            self.boosters_ = list(pool.map(fit_one, seeds))
        return self

    def predict(self, x) -> np.ndarray:
        return np.mean([booster.predict(x) for booster in self.boosters_], axis=0)


class LightGBMForecaster(TabularForecaster):
    name = "lightgbm"
    forecasts_customers = False
    # Tuned on the real data's backtest_1 and backtest_2 folds (bench/tune.py, bench/README.md "Features and
    # LightGBM"): learning rate 0.1 or 1000 trees fitted the earlier folds worse; half the columns per tree and
    # 400 trees scored best on their mean and fit fastest.
    default_params = {
        "n_estimators": 400,
        "learning_rate": 0.05,
        "num_leaves": 63,
        "min_child_samples": 40,
        "reg_lambda": 1.0,
        "subsample": 0.8,  # rows per tree (bagging), redrawn every tree
        "colsample_bytree": 0.5,  # columns per tree
        "max_bin": 255,
        "random_state": 42,
        # boosters averaged: one seed's fold RMSPE moved by up to 0.0025 with the seed alone
        "n_seeds": 2,
        "target_offset": "store_dow_promo_log_sales_mean_year",
        # the store's trend (last quarter against the same quarter a year before) added to the offset: without it
        # the boosters carry about two thirds of it into the forecast (bench/README.md, "Month end, the carnival
        # offset and the store trend")
        "trend_offset_weight": 1.0,
        # OpenMP threads per booster for fit and predict (bench/README.md measures 1 against 2 on this shared
        # machine: OpenMP's busy-waiting made 2 threads four times slower) ...
        "n_threads": 1,
        # ... and boosters fitted at once, each on its own thread: the seeds use both cores without OpenMP
        "n_parallel_seeds": 2,
    }
    fast_params = {"n_estimators": 30, "num_leaves": 15, "min_child_samples": 10}

    def build_pipeline(self, numeric: list[str], categorical: list[str], n_rows: int) -> Pipeline:
        p = self.params
        features = ordinal_categoricals_first(numeric, categorical)
        boosting = SeedAveragedLGBM(dict(
            objective="regression", n_estimators=int(p["n_estimators"]), learning_rate=float(p["learning_rate"]),
            num_leaves=int(p["num_leaves"]), min_child_samples=int(p["min_child_samples"]),
            reg_lambda=float(p["reg_lambda"]), subsample=float(p["subsample"]),
            subsample_freq=1 if float(p["subsample"]) < 1.0 else 0, colsample_bytree=float(p["colsample_bytree"]),
            max_bin=int(p["max_bin"]), n_jobs=p["n_threads"], verbose=-1),
            n_seeds=int(p["n_seeds"]), random_state=int(p["random_state"]), n_parallel=int(p["n_parallel_seeds"]))
        return Pipeline([("features", features), ("boosting", boosting)])

    def estimator_fit_params(self) -> dict:
        # the ordinal-encoded categoricals come first in the transformed matrix
        return {"boosting__categorical_feature": list(range(len(self.categorical)))}
