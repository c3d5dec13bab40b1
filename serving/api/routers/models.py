"""``GET /models``: the registry with each version's metrics and dbt's flags (marts.dim_model_versions)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query

from serving.api.dependencies import Reader, versions
from serving.api.schemas import ModelParam, Models
from serving.queries import rows

router = APIRouter(tags=["models"])

# Metrics nest as split -> metric -> value (non-finite values as NULL: JSON has no NaN).
MODELS_SQL = """
WITH per_split AS (
    SELECT model, model_version, split,
           map_from_entries(list((metric, CASE WHEN isfinite(value) THEN value END) ORDER BY metric)) AS metrics
    FROM ml.model_metrics
    GROUP BY ALL
), per_version AS (
    SELECT model, model_version, map_from_entries(list((split, metrics) ORDER BY split)) AS metrics
    FROM per_split
    GROUP BY ALL
)
SELECT r.*, v.is_latest, v.is_champion, v.has_forecasts, coalesce(m.metrics, MAP {}) AS metrics
FROM ml.model_registry AS r
JOIN marts.dim_model_versions AS v ON v.model = r.model AND v.model_version = r.model_version
LEFT JOIN per_version AS m ON m.model = r.model AND m.model_version = r.model_version
WHERE ($model IS NULL OR r.model = $model) AND (NOT $latest_only OR v.is_latest)
ORDER BY r.model, r.trained_at, r.model_version
"""


def _parsed(params):
    """The registry's JSON parameters as an object (left as text when it is not JSON)."""
    try:
        return json.loads(params) if isinstance(params, str) else params
    except ValueError:
        return params


@router.get("/models", response_model=Models, summary="Model registry and validation metrics")
def list_models(reader: Reader, model: ModelParam = None,
                latest_only: Annotated[bool, Query(description="Only each model's latest version")] = False
                ) -> dict:
    with reader.session() as s:
        champion = versions(s).champion
        found = rows(s.con, MODELS_SQL, {"model": model, "latest_only": latest_only})
        return {
            "published_version": s.version_id,
            "champion": None if champion is None else {
                "model": champion["model"], "model_version": champion["model_version"],
                "validation_rmspe": champion["validation_rmspe"], "mean_rmspe": champion["mean_rmspe"]},
            "models": [{**r, "params": _parsed(r["params"])} for r in found],
        }
