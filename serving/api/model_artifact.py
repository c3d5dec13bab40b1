"""Loading the models that ``POST /predict`` serves: the one place that knows how a saved model is opened
and asked for predictions with their interval (so a change of model classes touches only this module)."""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from forecasting.artifacts import load_forecaster, verify_artifact
from forecasting.features import prepare_frame
from forecasting.runner import interval_forecast

# The tabular models and the baseline: their predict needs nothing but the request's feature rows and what the model learnt (its
# store statistics). The LSTM needs each store's recent sequence, the blend its members' forecasts: they only have
# stored forecasts (GET /stores/{id}/forecast).
LIVE_MODELS = ("random_forest", "hist_gradient_boosting", "baseline")

Predictor = Callable[[pd.DataFrame], pd.DataFrame]


@dataclass(frozen=True)
class LoadedModel:
    name: str
    predict: Predictor  # feature rows -> sales_pred, sales_lower, sales_upper, customers_pred (input order)
    interval: float | None  # the interval's level, e.g. 0.8
    train_start: pd.Timestamp
    plan_start: pd.Timestamp  # the day after the model's training data: horizon day 0
    horizon_days: int


def load_model_artifact(directory: Path, models_dirs: Collection[Path]) -> LoadedModel:
    """The model saved in ``directory`` -- verified against the checksums recorded at save time and required to lie
    inside one of ``models_dirs`` before anything is unpickled -- as a function from feature rows (as
    :func:`serving.features.build_feature_rows` returns them) to predictions with the model's calibrated interval
    (its ``interval_factors`` per horizon week, from the day after ``train_end``)."""
    meta = verify_artifact(directory, models_dirs)
    if meta["model"] not in LIVE_MODELS:
        raise TypeError(f"{directory} holds a {meta['model']}, which has no live predict path")
    fitted = load_forecaster(directory, models_dirs)
    factors = pd.DataFrame(meta["interval_factors"])
    plan_start = pd.Timestamp(meta["train_end"]) + pd.Timedelta(days=1)

    def predict(features: pd.DataFrame) -> pd.DataFrame:
        frame = prepare_frame(features.assign(__row=range(len(features))))  # sorted by store and date
        predicted = fitted.predict(None, frame)
        order = frame["__row"].to_numpy().argsort()  # back to the input order
        predicted = predicted.iloc[order].reset_index(drop=True)
        out = interval_forecast(predicted["store_id"], predicted["sale_date"], predicted["sales_pred"],
                                predicted["customers_pred"], plan_start, factors)
        return out[["sales_pred", "sales_lower", "sales_upper", "customers_pred"]]

    return LoadedModel(name=meta["model"], predict=predict, interval=meta.get("interval"),
                       train_start=pd.Timestamp(meta["train_start"]), plan_start=plan_start,
                       horizon_days=int(meta.get("horizon_days") or len(factors) * 7))
