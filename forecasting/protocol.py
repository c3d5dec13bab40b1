"""The model protocol, the base class with the one artifact format, and the registry of forecasters.

A forecaster is built from its parameters, fitted on history rows of ``marts.fct_store_daily_features`` with the
dbt store statistics of its training cut, and predicts any rows of the mart::

    forecaster = create("random_forest", profile="fast")
    fitted = forecaster.fit(train_rows, stats)            # returns the fitted forecaster
    fitted.predict(context_rows, target_rows)             # DataFrame[PREDICTION_COLUMNS], one row per target row
    fitted.save(directory); type(fitted).load(directory)

``context_rows`` is the history available at forecast time (models that need no recent context ignore it);
``target_rows``' sales and customers are never read.  Closed days are always forecast 0.  A forecaster with
``supports_refit`` can continue training on a longer history (``refit``) more cheaply than fitting again; with
``warm_start_folds`` the backtest chains its folds through ``refit`` too.  ``forecasts_customers`` says whether
the customer forecast is the model's own (else it is derived from the sales forecast).
"""

from __future__ import annotations

from importlib import import_module
from pathlib import Path
from typing import ClassVar, Protocol, Self, runtime_checkable

import joblib
import numpy as np
import pandas as pd

from forecasting.features import StoreStats

PREDICTION_COLUMNS = ["store_id", "sale_date", "sales_pred", "customers_pred"]


@runtime_checkable
class Forecaster(Protocol):
    name: ClassVar[str]
    supports_refit: ClassVar[bool]
    warm_start_folds: ClassVar[bool]
    forecasts_customers: ClassVar[bool]
    params: dict

    def fit(self, history: pd.DataFrame, stats: StoreStats | None) -> Self: ...

    def refit(self, history: pd.DataFrame, **overrides) -> Self: ...

    def predict(self, context: pd.DataFrame | None, target: pd.DataFrame) -> pd.DataFrame: ...

    def save(self, directory: str | Path) -> Path: ...

    @classmethod
    def load(cls, directory: str | Path) -> Self: ...


class BaseForecaster:
    """Parameters merged over the class defaults, and the artifact: the whole fitted object in one joblib file."""

    name: ClassVar[str]
    default_params: ClassVar[dict] = {}
    fast_params: ClassVar[dict] = {}
    supports_refit: ClassVar[bool] = False
    warm_start_folds: ClassVar[bool] = False
    forecasts_customers: ClassVar[bool] = True
    ARTIFACT: ClassVar[str] = "model.joblib"

    def __init__(self, params: dict | None = None):
        self.params = {**self.default_params, **(params or {})}

    def refit(self, history: pd.DataFrame, **overrides) -> Self:
        raise NotImplementedError(f"{self.name} has no warm-started refit (supports_refit is False)")

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / self.ARTIFACT
        joblib.dump(self, path, compress=3)
        return path

    @classmethod
    def load(cls, directory: str | Path) -> Self:
        fitted = joblib.load(Path(directory) / cls.ARTIFACT)
        if not isinstance(fitted, cls):
            raise TypeError(f"{directory} holds a {type(fitted).__name__}, not a {cls.__name__}")
        return fitted


# name -> "module:class"; imported on first use (the LSTM pulls in TensorFlow).
REGISTRY: dict[str, str] = {
    "baseline": "forecasting.models.baseline:BaselineForecaster",
    "random_forest": "forecasting.models.random_forest:RandomForestForecaster",
    "hist_gradient_boosting": "forecasting.models.hist_gradient_boosting:HistGradientBoostingForecaster",
    "lstm": "forecasting.models.lstm:LSTMForecaster",
    "lightgbm": "forecasting.models.lightgbm:LightGBMForecaster",
    "entity_embedding": "forecasting.models.entity_embedding:EntityEmbeddingForecaster",
}
# The models the pipeline trains (one Dagster asset each, orchestration/assets/models.py); every registered model
# can be created, trained and benchmarked (bench/accuracy.py --models).
MODEL_NAMES = ("baseline", "random_forest", "lightgbm", "lstm")


def forecaster_class(name: str) -> type[BaseForecaster]:
    if name not in REGISTRY:
        raise ValueError(f"unknown model {name!r}; expected one of {tuple(REGISTRY)}")
    module, cls = REGISTRY[name].split(":")
    return getattr(import_module(module), cls)


def create(name: str, params: dict | None = None, profile: str = "default") -> BaseForecaster:
    """A new forecaster: the class defaults, the ``fast`` profile's tiny settings when asked, then ``params``."""
    cls = forecaster_class(name)
    if profile not in ("default", "fast"):
        raise ValueError(f"unknown training profile {profile!r}; expected 'default' or 'fast'")
    return cls({**(cls.fast_params if profile == "fast" else {}), **(params or {})})


def prediction_frame(target: pd.DataFrame, sales_pred, customers_pred) -> pd.DataFrame:
    """The prediction frame for ``target`` rows: closed days -> 0, negatives / NaN -> 0."""
    is_open = pd.Series(np.asarray(target["is_open"])).astype("boolean").fillna(True).to_numpy(bool)
    sales = np.nan_to_num(np.asarray(sales_pred, dtype="float64"), nan=0.0).clip(min=0.0)
    cust = np.nan_to_num(np.asarray(customers_pred, dtype="float64"), nan=0.0).clip(min=0.0)
    return pd.DataFrame({
        "store_id": np.asarray(target["store_id"]).astype("int64"),
        "sale_date": pd.to_datetime(np.asarray(target["sale_date"])),
        "sales_pred": np.where(is_open, sales, 0.0),
        "customers_pred": np.where(is_open, cust, 0.0),
    })
