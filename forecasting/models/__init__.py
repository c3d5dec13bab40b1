"""Forecasting models.

Every model module exposes plain functions::

    fit(train_df, params, stats) -> fitted
    predict(fitted, context_df, target_df) -> DataFrame[store_id, sale_date, sales_pred, customers_pred]
    save(fitted, directory) -> Path        # writes the model artifact(s) into an existing directory
    load(directory) -> fitted
    DEFAULT_PARAMS, FAST_PARAMS            # dicts; FAST_PARAMS is small enough for unit tests

``stats`` is the :class:`forecasting.features.StoreStats` of the training cut (the dbt store statistics of the
day after ``train_df``'s last day); the LSTM, which scales each store itself, ignores it.
``train_df`` / ``context_df`` are history rows of ``marts.fct_store_daily_features`` (``context_df`` is the
history available at forecast time; models that need no recent context ignore it), ``target_df`` are the rows
to forecast (their sales/customers are never read).  The prediction frame has one row per ``target_df`` row in
the same order.  Closed days (``is_open`` false) are always forecast 0.
A module may also define ``refit(fitted, full_history_df, params) -> fitted`` (a cheaper warm-started refit);
:mod:`forecasting.training` uses it when present, else calls ``fit`` again.  With ``WARM_START_FOLDS = True``
the backtest folds (:mod:`forecasting.backtest`) are chained through ``refit`` as well.
The blend of these models (``blend``) is built in :func:`forecasting.training.train_blend`.
"""

from __future__ import annotations

from importlib import import_module
from types import ModuleType

import numpy as np
import pandas as pd

MODEL_NAMES = ("baseline", "random_forest", "hist_gradient_boosting", "lstm")
PREDICTION_COLUMNS = ["store_id", "sale_date", "sales_pred", "customers_pred"]


def get_model(name: str) -> ModuleType:
    """The model module for ``name`` (one of MODEL_NAMES); imported lazily (the LSTM pulls in TensorFlow)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model {name!r}; expected one of {MODEL_NAMES}")
    return import_module(f"{__name__}.{name}")


def prediction_frame(target_df: pd.DataFrame, sales_pred, customers_pred) -> pd.DataFrame:
    """Assemble the prediction frame for ``target_df`` rows: closed days -> 0, negatives/NaN -> 0."""
    is_open = pd.Series(np.asarray(target_df["is_open"])).astype("boolean").fillna(True).to_numpy(bool)
    sales = np.nan_to_num(np.asarray(sales_pred, dtype="float64"), nan=0.0).clip(min=0.0)
    cust = np.nan_to_num(np.asarray(customers_pred, dtype="float64"), nan=0.0).clip(min=0.0)
    sales = np.where(is_open, sales, 0.0)
    cust = np.where(is_open, cust, 0.0)
    return pd.DataFrame(
        {
            "store_id": np.asarray(target_df["store_id"]).astype("int64"),
            "sale_date": pd.to_datetime(np.asarray(target_df["sale_date"])),
            "sales_pred": sales,
            "customers_pred": cust,
        }
    )
