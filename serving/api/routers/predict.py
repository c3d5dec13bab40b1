"""``POST /predict``: live predictions with their interval, by default from the champion (or, when the champion
has no live predict path, the most accurate model that has one), else from the model or version named."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, HTTPException, Request

from forecasting.artifacts import ArtifactIntegrityError
from serving.api.dependencies import Models, Reader, store_ids, versions
from serving.api.errors import unprocessable
from serving.api.model_artifact import LIVE_MODELS, LoadedModel
from serving.api.model_cache import artifact_dir, models_dirs
from serving.api.schemas import PredictBody, PredictModelParam, Predictions, VersionParam, interval_note
from serving.features import build_feature_rows
from serving.queries import ModelVersions

router = APIRouter(tags=["predict"])
FAR_DAYS = 366  # a date this far before the training data or after the plan's horizon gets a warning


def _choose(info: ModelVersions, model: str | None, model_version: str | None) -> tuple[dict, str | None]:
    """The registry row to predict with, and a note when the default could not be the champion."""
    if model_version is not None:
        row = info.by_version.get(model_version)
        if row is None or (model is not None and row["model"] != model):
            raise HTTPException(status_code=404, detail=f"Model version {model_version!r} "
                                                        f"{f'of {model} ' if model else ''}not in ml.model_registry.")
        if row["model"] not in LIVE_MODELS:
            raise unprocessable(["query", "model_version"], f"Version {model_version!r} is a {row['model']}, which "
                                f"has no live predict path; models that can: {list(LIVE_MODELS)}.", model_version)
        return row, None
    if model is not None:
        row = info.latest_trained.get(model)
        if row is None:
            raise HTTPException(status_code=503, detail=f"No {model} in ml.model_registry yet.")
        return row, None
    champion = info.champion
    if champion is not None and champion["model"] in LIVE_MODELS:
        return champion, None
    live = sorted((r for r in info.latest.values() if r["model"] in LIVE_MODELS),
                  key=lambda r: (r.get("mean_rmspe") is None, r.get("mean_rmspe") or 0.0))
    if not live:
        raise HTTPException(status_code=503, detail=f"No model with a live predict path ({list(LIVE_MODELS)}) "
                                                    "has forecasts in the published warehouse.")
    note = None if champion is None else (
        f"The champion ({champion['model']}) has no live predict path; these predictions are from "
        f"{live[0]['model']}, the most accurate model that has one.")
    return live[0], note


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
                         "plan/history around them. Default model: the champion of marts.dim_model_versions when "
                         f"it has a live predict path ({', '.join(LIVE_MODELS)}), else the most accurate model that "
                         "has one (`note` says so); `model` picks a model's latest version, `model_version` a "
                         "version. Any other model is a 422. Each prediction carries the model's calibrated "
                         "interval for its horizon week; dates far outside the training data and horizon carry "
                         "a `warning`.",
             responses={404: {"description": "Unknown store or model version"},
                        413: {"description": "More rows than API_PREDICT_MAX_ROWS, or a body over API_MAX_BODY_BYTES"},
                        503: {"description": "No published warehouse or no usable model artifact"}})
def predict(request: Request, reader: Reader, models: Models, payload: PredictBody, model: PredictModelParam = None,
            model_version: VersionParam = None) -> dict:
    limit = reader.settings.api_predict_max_rows
    if isinstance(payload, list) and len(payload) > limit:
        raise HTTPException(status_code=413, detail=f"POST /predict takes at most {limit} store-days "
                                                    f"(API_PREDICT_MAX_ROWS); this request has {len(payload)}.")
    if model is not None and model not in LIVE_MODELS:
        raise unprocessable(["query", "model"], f"Model {model!r} has no live predict path; models that can serve "
                                                f"predictions: {list(LIVE_MODELS)}.", model)
    rows = payload if isinstance(payload, list) else [payload]
    frame = pd.DataFrame({
        "store_id": [r.store for r in rows],
        "sale_date": [r.date for r in rows],
        "is_open": pd.array([r.open for r in rows], dtype="boolean"),
        "is_promo": [r.promo for r in rows],
        "state_holiday": [r.state_holiday for r in rows],
        "is_school_holiday": [r.school_holiday for r in rows],
    })
    with reader.session() as s:
        unknown = sorted({r.store for r in rows} - store_ids(s))
        if unknown:
            raise HTTPException(status_code=404, detail=f"Unknown store(s) {unknown[:20]} (not in "
                                                        "marts.dim_stores).")
        info = versions(s)
        chosen, note = _choose(info, model, model_version)
        name, version = chosen["model"], chosen["model_version"]
        artifact = s.con.execute("SELECT artifact_path FROM ml.model_registry WHERE model = ? AND model_version = ?",
                                 [name, version]).fetchall()[0][0]
        features = build_feature_rows(s.con, frame)
        published_version = s.version_id
        champion = info.champion
    roots = models_dirs(reader.settings.data_dir, reader.path)
    directory = artifact_dir(artifact, name, version, roots)
    if directory is None:
        raise HTTPException(status_code=503, detail=f"The artifact of {name} {version} is not in the models folder "
                                                    "(DATA_DIR/models).")
    try:
        loaded = models.get(directory, roots)
    except ArtifactIntegrityError as exc:
        raise HTTPException(status_code=503, detail=f"The artifact of {name} {version} failed its integrity check "
                                                    "and was not loaded; the server log says why.") from exc
    predicted = loaded.predict(features)
    request.app.state.metrics.predictions.labels(name).inc(len(frame))
    return {"model": name, "model_version": version, "published_version": published_version,
            "is_champion": champion is not None and champion["model_version"] == version,
            "champion": None if champion is None else champion["model"], "note": note,
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
