"""Random forest (scikit-learn ``RandomForestRegressor``), multi-output: log sales and log customers.

``ColumnTransformer``: median-impute the numerics (store statistics included), one-hot the small categoricals
(store_type, assortment, state_holiday, extra mart categoricals), pass the booleans through.  Store identity
enters only through the store statistics (see :mod:`forecasting.models.tabular`), not a one-hot of store ids.
"""

from __future__ import annotations

import numpy as np
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestRegressor
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

from forecasting.features import BOOLEAN_FEATURES
from forecasting.models.tabular import TabularForecaster


class RandomForestForecaster(TabularForecaster):
    name = "random_forest"
    default_params = {
        # Tuned on the real data's backtest_2 fold (bench/tune.py; bench/README.md): max_features 0.3 / 0.5 / 0.7
        # and min_samples_leaf 2 / 4 score alike, 0.3 fits fastest.  100 trees beat 40 by 0.0008-0.0014 per
        # backtest fold; the time of the trees left out buys the LSTM a fourth seed within the 20 minutes
        # (bench/README.md, "A fourth LSTM seed for a smaller forest")
        "n_estimators": 40,
        "max_depth": 24,
        "min_samples_leaf": 4,
        "max_features": 0.3,
        "max_samples": 150_000,  # rows per tree (int) or fraction (float); capped at the number of rows
        "target": "residual",  # "residual" (log deviation from target_offset) or "log" (plain log1p)
        # the last year's store x weekday x promo mean: backtest_2 on the real data 0.114 against 0.123 with the
        # 3-year mean (bench/README.md)
        "target_offset": "store_dow_promo_log_sales_mean_year",
        "n_jobs": -1,
        "random_state": 42,
        "verbose": 0,
    }
    fast_params = {"n_estimators": 10, "max_depth": 10, "max_samples": 5_000}

    def build_pipeline(self, numeric: list[str], categorical: list[str], n_rows: int) -> Pipeline:
        p = self.params
        max_samples = None if isinstance(p["max_samples"], int) and p["max_samples"] >= n_rows else p["max_samples"]
        features = ColumnTransformer([
            ("num", SimpleImputer(strategy="median", keep_empty_features=True),
             [c for c in numeric if c not in BOOLEAN_FEATURES]),
            ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False, dtype=np.float32), categorical),
            ("bool", "passthrough", [c for c in numeric if c in BOOLEAN_FEATURES]),
        ], sparse_threshold=0.0)
        forest = RandomForestRegressor(
            n_estimators=int(p["n_estimators"]), max_depth=p["max_depth"], min_samples_leaf=p["min_samples_leaf"],
            max_features=p["max_features"], max_samples=max_samples, bootstrap=True, n_jobs=p["n_jobs"],
            random_state=p["random_state"], verbose=p.get("verbose", 0))
        return Pipeline([("features", features), ("forest", forest)])
