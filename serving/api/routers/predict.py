"""``POST /predict``: live predictions of the latest (or a named) random forest for any store-days."""

from __future__ import annotations

import pandas as pd
from fastapi import APIRouter, HTTPException

from serving.api.dependencies import Models, Reader, store_ids, versions
from serving.api.errors import unprocessable
from serving.api.model_artifact import SERVED_MODEL
from serving.api.model_cache import artifact_dir
from serving.api.schemas import PredictBody, PredictModelParam, Predictions, VersionParam
from serving.features import build_feature_rows

router = APIRouter(tags=["predict"])
PREDICT_MODELS = (SERVED_MODEL,)  # the models POST /predict can run (others only have stored forecasts)


@router.post("/predict", response_model=Predictions, summary="Live random forest predictions",
             description="One store-day object or an array of up to 5000. Features are built like the "
                         "feature mart's: calendar from the date, store attributes from marts.dim_stores, "
                         "holiday/closure distances over the requested rows and the plan/history around "
                         "them. Uses the latest random forest in ml.model_registry unless `model_version` "
                         "is given. `model` may name only a model with a live predict path (random_forest); "
                         "any other is a 422.",
             responses={404: {"description": "Unknown store or model version"},
                        503: {"description": "No published warehouse or no model artifact"}})
def predict(reader: Reader, models: Models, payload: PredictBody, model: PredictModelParam = None,
            model_version: VersionParam = None) -> dict:
    if model is not None and model not in PREDICT_MODELS:
        raise unprocessable(["query", "model"], f"Model {model!r} has no live predict path; models that can serve "
                                                f"predictions: {list(PREDICT_MODELS)}.", model)
    rows = payload if isinstance(payload, list) else [payload]
    request = pd.DataFrame({
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
        if model_version is not None:
            registered = info.by_version.get(model_version)
            if registered is None or registered["model"] != SERVED_MODEL:
                raise HTTPException(status_code=404, detail=f"Random forest version {model_version!r} not "
                                                            "found in ml.model_registry.")
        else:
            registered = info.latest_trained.get(SERVED_MODEL)
            if registered is None:
                raise HTTPException(status_code=503, detail="No random forest in ml.model_registry yet.")
        version = registered["model_version"]
        artifact = s.con.execute("SELECT artifact_path FROM ml.model_registry WHERE model = ? AND model_version = ?",
                                 [SERVED_MODEL, version]).fetchall()[0][0]
        features = build_feature_rows(s.con, request)
        published_version = s.version_id
    directory = artifact_dir(artifact, reader.path, reader.settings.data_dir)
    if directory is None:
        raise HTTPException(status_code=503, detail=f"The artifact of random_forest {version} is not at "
                                                    f"{artifact!r} (nor under DATA_DIR).")
    predicted = models.get(directory)(features)
    return {"model": SERVED_MODEL, "model_version": version, "published_version": published_version,
            "predictions": pd.DataFrame({
                "store": request["store_id"], "date": request["sale_date"],
                "open": request["is_open"].fillna(True).astype(bool),
                "sales_pred": predicted["sales_pred"].astype(float),
                "customers_pred": predicted["customers_pred"].astype(float),
            }).to_dict("records")}
