"""``POST /predict``: live predictions with their interval from any model the pipeline trains, by default the
champion, else the model or version named."""

from __future__ import annotations

import logging

import pandas as pd
from fastapi import APIRouter, HTTPException, Request

from forecasting.artifacts import ArtifactIntegrityError
from serving.api.dependencies import Models, Reader, store_ids, versions
from serving.api.errors import unprocessable
from serving.api.model_artifact import LIVE_MODELS, LSTM_REACH_DAYS, BeyondReach, LoadedModel
from serving.api.model_cache import model_ref, models_dirs
from serving.api.schemas import PredictBody, PredictModelParam, Predictions, VersionParam, interval_note
from serving.features import build_feature_rows, forecast_context
from serving.queries import ModelVersions

log = logging.getLogger(__name__)
router = APIRouter(tags=["predict"])
FAR_DAYS = 366  # a date this far before the training data or after the plan's horizon gets a warning


def _choose(info: ModelVersions, model: str | None, model_version: str | None) -> dict:
    """The registry row to predict with: the version named, else the model's latest, else the champion."""
    if model_version is not None:
        row = info.by_version.get(model_version)
        if row is None or (model is not None and row["model"] != model):
            raise HTTPException(status_code=404, detail=f"Model version {model_version!r} "
                                                        f"{f'of {model} ' if model else ''}not in ml.model_registry.")
        if row["model"] not in LIVE_MODELS:
            raise unprocessable(["query", "model_version"], f"Version {model_version!r} is a {row['model']}, which "
                                f"has no live predict path; models that can: {list(LIVE_MODELS)}.", model_version)
        return row
    if model is not None:
        row = info.latest_trained.get(model)
        if row is None:
            raise HTTPException(status_code=503, detail=f"No {model} in ml.model_registry yet.")
        return row
    if info.champion is None:
        raise HTTPException(status_code=503, detail="No champion in the published warehouse yet.")
    return info.champion


def _warnings(frame: pd.DataFrame, model: LoadedModel) -> list[str | None]:
    """Per row: a warning when the date is far from anything the model learnt from or was calibrated for."""
    dates = pd.to_datetime(frame["sale_date"])
    plan_end = model.plan_start + pd.Timedelta(days=model.horizon_days - 1)
    before = (model.train_start - dates).dt.days
    after = (dates - plan_end).dt.days
    text = pd.Series([None] * len(frame), dtype=object)
    text[before > FAR_DAYS] = [f"{d:%Y-%m-%d} is {n} days before the model's training data "
                               f"(from {model.train_start:%Y-%m-%d}): an extrapolation"
                               for d, n in zip(dates[before > FAR_DAYS], before[before > FAR_DAYS])]
    text[after > FAR_DAYS] = [f"{d:%Y-%m-%d} is {n} days after the forecast horizon (to {plan_end:%Y-%m-%d}): an "
                              "extrapolation; the interval is the last horizon week's"
                              for d, n in zip(dates[after > FAR_DAYS], after[after > FAR_DAYS])]
    return text.tolist()


@router.post("/predict", response_model=Predictions, summary="Live predictions with their interval",
             description="One store-day object or an array of them (at most API_PREDICT_MAX_ROWS, default 5000). "
                         "Features are built like the feature mart's: calendar from the date, store attributes "
                         "from marts.dim_stores, holiday/closure distances over the requested rows and the "
                         "plan/history around them. Default model: the champion of marts.dim_model_versions, "
                         f"whichever it is; `model` ({', '.join(LIVE_MODELS)}) picks a model's latest version, "
                         "`model_version` a version; any other model is a 422. The LSTM forecasts each store from "
                         "its forecast origin -- the day after the history, or the store's first requested day "
                         "when earlier -- reading the history before it and the plan's known days after it, up to "
                         f"{LSTM_REACH_DAYS} days (a store's days further from its origin are a 422); the blend "
                         "combines its member versions' live predictions with its saved weights. Each prediction "
                         "carries the model's calibrated interval for its horizon week; dates far outside the "
                         "training data and horizon carry a `warning`.",
             responses={404: {"description": "Unknown store or model version"},
                        413: {"description": "More rows than API_PREDICT_MAX_ROWS, or a body over API_MAX_BODY_BYTES"},
                        422: {"description": "Bad input, an unknown model, or days the LSTM cannot reach"},
                        503: {"description": "No published warehouse or no usable model artifact"}})
def predict(request: Request, reader: Reader, models: Models, payload: PredictBody, model: PredictModelParam = None,
            model_version: VersionParam = None) -> dict:
    limit = reader.settings.api_predict_max_rows
    if isinstance(payload, list) and len(payload) > limit:
        raise HTTPException(status_code=413, detail=f"POST /predict takes at most {limit} store-days "
                                                    f"(API_PREDICT_MAX_ROWS); this request has {len(payload)}.")
    if model is not None and model not in LIVE_MODELS:
        raise unprocessable(["query", "model"], f"Unknown model {model!r}; models that can serve predictions: "
                                                f"{list(LIVE_MODELS)}.", model)
    rows = payload if isinstance(payload, list) else [payload]
    frame = pd.DataFrame({
        "store_id": [r.store for r in rows],
        "sale_date": [r.date for r in rows],
        "is_open": pd.array([r.open for r in rows], dtype="boolean"),
        "is_promo": [r.promo for r in rows],
        "state_holiday": [r.state_holiday for r in rows],
        "is_school_holiday": [r.school_holiday for r in rows],
    })
    roots = models_dirs(reader.settings.data_dir, reader.path)
    with reader.session() as s:
        unknown = sorted({r.store for r in rows} - store_ids(s))
        if unknown:
            raise HTTPException(status_code=404, detail=f"Unknown store(s) {unknown[:20]} (not in "
                                                        "marts.dim_stores).")
        info = versions(s)
        chosen = _choose(info, model, model_version)
        name, version = chosen["model"], chosen["model_version"]
        ref = model_ref(s.con, name, version, roots)
        features = build_feature_rows(s.con, frame)
        context = forecast_context(s.con, frame, ref.context_days) if ref.context_days else None
        published_version = s.version_id
        champion = info.champion
    if missing := ref.missing():
        raise HTTPException(status_code=503, detail=f"The artifact of {', '.join(missing)} is not in the models "
                                                    "folder (DATA_DIR/models).")
    try:
        loaded = models.get(ref, roots)
    except ArtifactIntegrityError as exc:
        log.warning("%s", exc)  # the paths are for the operator's log, not for callers
        raise HTTPException(status_code=503, detail=f"The artifact of {name} {version} failed its integrity check "
                                                    "and was not loaded; the server log says why.") from exc
    try:
        predicted = loaded.predict(features, context)
    except BeyondReach as exc:
        raise unprocessable(["body"], str(exc)) from exc
    request.app.state.metrics.predictions.labels(name).inc(len(frame))
    return {"model": name, "model_version": version, "published_version": published_version,
            "is_champion": champion is not None and champion["model_version"] == version,
            "champion": None if champion is None else champion["model"],
            "interval": interval_note(loaded.interval),
            "predictions": pd.DataFrame({
                "store": frame["store_id"], "date": frame["sale_date"],
                "open": frame["is_open"].fillna(True).astype(bool),
                "sales_pred": predicted["sales_pred"].astype(float),
                "sales_lower": predicted["sales_lower"].astype(float),
                "sales_upper": predicted["sales_upper"].astype(float),
                "customers_pred": predicted["customers_pred"].astype(float),
                "warning": pd.Series(_warnings(frame, loaded), dtype=object),  # object: None stays null, not NaN
            }).to_dict("records")}
