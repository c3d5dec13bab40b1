"""Histogram gradient boosting (scikit-learn ``HistGradientBoostingRegressor``) on log sales of open days.

``ColumnTransformer``: ordinal-encode the categoricals (native categorical splits), pass numerics, booleans and
store statistics through.  Customers are the sales forecast divided by the store's sales per customer before
the cut (one boosted model instead of two); see :mod:`forecasting.models.tabular` for the target.
"""

from __future__ import annotations

from sklearn.ensemble import HistGradientBoostingRegressor
from sklearn.pipeline import Pipeline

from forecasting.models.tabular import TabularForecaster, ordinal_categoricals_first


class HistGradientBoostingForecaster(TabularForecaster):
    name = "hist_gradient_boosting"
    forecasts_customers = False
    drops_empty_columns = True
    default_params = {
        "max_iter": 400,
        "learning_rate": 0.1,
        "max_leaf_nodes": 63,
        "min_samples_leaf": 40,
        "l2_regularization": 1.0,
        "max_bins": 255,
        "random_state": 42,
        # the last year's store x weekday x promo mean beat the 3-year one on every real-data fold (bench/README.md)
        "target_offset": "store_dow_promo_log_sales_mean_year",
        # OpenMP threads.  1: on a shared 2-core machine OpenMP's busy-waiting threads collapse under contention
        # (measured: 50 s with 2 threads vs 5 s with 1 on the default data while other processes ran); None =
        # scikit-learn's default (all cores), for a dedicated machine.
        "n_threads": 1,
        "verbose": 0,
    }
    fast_params = {"max_iter": 30, "max_leaf_nodes": 15, "min_samples_leaf": 10}

    def build_pipeline(self, numeric: list[str], categorical: list[str], n_rows: int) -> Pipeline:
        p = self.params
        features = ordinal_categoricals_first(numeric, categorical)
        boosting = HistGradientBoostingRegressor(
            loss="squared_error", learning_rate=float(p["learning_rate"]), max_iter=int(p["max_iter"]),
            max_leaf_nodes=int(p["max_leaf_nodes"]), min_samples_leaf=int(p["min_samples_leaf"]),
            l2_regularization=float(p["l2_regularization"]), max_bins=int(p["max_bins"]),
            categorical_features=list(range(len(categorical))), early_stopping=False,
            random_state=int(p["random_state"]), verbose=int(p.get("verbose", 0)))
        return Pipeline([("features", features), ("boosting", boosting)])
