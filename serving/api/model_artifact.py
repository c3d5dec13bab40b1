"""Loading the models that ``POST /predict`` serves: the one place that knows how a saved model is opened
and asked for predictions with their interval (so a change of model classes touches only this module).

Every model the pipeline trains has a live predict path:

- the tabular models and the baseline need nothing but the request's feature rows and what they learnt;
- the LSTM also reads each requested store's recent history (:class:`serving.features.ForecastContext`): the
  ``lookback_days`` before the store's forecast origin, and the mart's known covariates from the origin to its
  last requested day, so a request for plan days reproduces the pipeline's forecast of those days. It forecasts
  one sequence per store from the origin, at most :data:`LSTM_REACH_DAYS` days long;
- the blend combines its members' live predictions (the member versions it was fitted on) with its saved weights.

Each answers with its own calibrated interval: the ``interval_factors`` per horizon week counted from the day
after its ``train_end`` (a blend's scaled by its members' spread on each requested day, as in the pipeline).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from forecasting.artifacts import ArtifactIntegrityError, load_forecaster, verify_artifact
from forecasting.blend import BLEND, combine
from forecasting.correction import StoreBiasCorrection
from forecasting.features import prepare_frame
from forecasting.intervals import SPREAD
from forecasting.protocol import MODEL_NAMES
from forecasting.runner import interval_forecast
from serving.features import ForecastContext, request_passes

LIVE_MODELS = (*MODEL_NAMES, BLEND)
LSTM = "lstm"
# The LSTM runs a store's whole sequence from its origin to its last requested day: a year bounds the work per
# request (and is far beyond the horizons it was trained and calibrated for).
LSTM_REACH_DAYS = 366
PREDICTION_COLUMNS = ["sales_pred", "sales_lower", "sales_upper", "customers_pred"]

# feature rows (as serving.features.build_feature_rows returns them, input order) and, for a model that reads
# recent history, its context -> PREDICTION_COLUMNS in the input order
Predictor = Callable[[pd.DataFrame, ForecastContext | None], pd.DataFrame]


class BeyondReach(ValueError):
    """Requested days a model cannot forecast; the message says why and what to ask instead (a 422)."""


@dataclass(frozen=True)
class LoadedModel:
    name: str
    version: str
    predict: Predictor
    interval: float | None  # the interval's level, e.g. 0.8
    train_start: pd.Timestamp
    plan_start: pd.Timestamp  # the day after the model's training data: horizon day 0
    horizon_days: int
    members: tuple[LoadedModel, ...] = ()  # a blend's: the loads it predicts with


def context_days(model: str, params: dict) -> int:
    """Days of each requested store's history before its forecast origin that ``model`` reads (its registry
    ``params``): the LSTM's lookback (the fitted one may be shorter, never longer), 0 for the others (a blend
    reads what its members do)."""
    return int(params.get("lookback_days") or 0) if model == LSTM else 0


def load_model_artifact(directory: Path, models_dirs: Collection[Path],
                        members: Sequence[LoadedModel] = ()) -> LoadedModel:
    """The model saved in ``directory`` -- verified against the checksums recorded at save time and required to lie
    inside one of ``models_dirs`` before anything is unpickled -- as a :data:`Predictor` with the model's
    calibrated interval. A blend needs its ``members`` loaded: the versions its ``meta.json`` names."""
    meta = verify_artifact(directory, models_dirs)
    if meta["model"] not in LIVE_MODELS:
        raise TypeError(f"{directory} holds a {meta['model']}, which has no live predict path")
    factors = pd.DataFrame(meta["interval_factors"])
    correction = StoreBiasCorrection.from_meta(meta)
    plan_start = pd.Timestamp(meta["train_end"]) + pd.Timedelta(days=1)

    def with_interval(features: pd.DataFrame, sales_pred, customers_pred, spread=None) -> pd.DataFrame:
        out = interval_forecast(features["store_id"], features["sale_date"], sales_pred, customers_pred, plan_start,
                                factors, correction, spread)
        return out[PREDICTION_COLUMNS]

    if meta["model"] != BLEND and members:
        raise TypeError(f"{directory} holds a {meta['model']}, which has no members")
    if meta["model"] == BLEND:
        predict = _blend_predictor(meta, members, with_interval)
    else:
        fitted = load_forecaster(directory, models_dirs)
        predict = (_lstm_predictor(fitted, with_interval) if meta["model"] == LSTM
                   else _tabular_predictor(fitted, with_interval))
    return LoadedModel(name=meta["model"], version=meta["model_version"], predict=predict,
                       interval=meta.get("interval"), train_start=pd.Timestamp(meta["train_start"]),
                       plan_start=plan_start, horizon_days=int(meta.get("horizon_days") or len(factors) * 7),
                       members=tuple(members))


def _tabular_predictor(fitted, with_interval) -> Predictor:
    def predict(features: pd.DataFrame, context: ForecastContext | None = None) -> pd.DataFrame:
        frame = prepare_frame(features.assign(__row=range(len(features))))  # sorted by store and date
        predicted = fitted.predict(None, frame)
        order = frame["__row"].to_numpy().argsort()  # back to the input order
        predicted = predicted.iloc[order].reset_index(drop=True)
        return with_interval(predicted, predicted["sales_pred"], predicted["customers_pred"])

    return predict


def _lstm_predictor(fitted, with_interval) -> Predictor:
    lock = threading.Lock()  # Keras' predict is not documented as thread-safe; requests run in a thread pool

    def predict(features: pd.DataFrame, context: ForecastContext | None) -> pd.DataFrame:
        if context is None:
            raise ValueError("the LSTM forecasts from each store's recent history: pass its ForecastContext")
        _check_reach(features, context.origins)
        history = prepare_frame(context.rows)
        sales, customers = np.zeros(len(features)), np.zeros(len(features))
        # a store-day asked more than once: one sequence per occurrence, as its features were built
        for in_pass, own in request_passes(features):
            target = prepare_frame(features.loc[in_pass].assign(__row=np.flatnonzero(in_pass)))  # sorted
            with lock:
                predicted = fitted.predict(history, target, origins=context.origins)  # in the target's order
            rows = target["__row"].to_numpy()
            answered = own[rows]
            sales[rows[answered]] = predicted["sales_pred"].to_numpy()[answered]
            customers[rows[answered]] = predicted["customers_pred"].to_numpy()[answered]
        return with_interval(features, sales, customers)

    return predict


def _check_reach(features: pd.DataFrame, origins: pd.Series) -> None:
    last = pd.to_datetime(features["sale_date"]).groupby(features["store_id"].to_numpy()).max()
    days = (last - origins.reindex(last.index)).dt.days + 1
    beyond = days[days > LSTM_REACH_DAYS]
    if len(beyond):
        store = beyond.index[0]
        raise BeyondReach(
            f"The LSTM forecasts each store's days as one sequence from its forecast origin (the day after the "
            f"history, or the store's first requested day when earlier) and reaches {LSTM_REACH_DAYS} days: store "
            f"{store}'s request runs from {origins[store]:%Y-%m-%d} to {last[store]:%Y-%m-%d} ({days[store]} days; "
            f"{len(beyond)} store(s) in all). Ask for the days of at most a year per store and request, or use "
            "another model.")


def _blend_predictor(meta: dict, members: Sequence[LoadedModel], with_interval) -> Predictor:
    weights = meta["params"]["weights"]
    wanted = meta["params"]["members"]
    by_name = {m.name: m for m in members}
    if {name: m.version for name, m in by_name.items()} != wanted:
        raise ArtifactIntegrityError(f"blend {meta['model_version']} was fitted on {wanted}; the members given are "
                                     f"{ {m.name: m.version for m in members} }")

    def predict(features: pd.DataFrame, context: ForecastContext | None) -> pd.DataFrame:
        combined = combine({name: by_name[name].predict(features, context) for name in weights}, weights)
        return with_interval(features, combined["sales_pred"].clip(min=0), combined["customers_pred"].clip(min=0),
                             combined[SPREAD])

    return predict
