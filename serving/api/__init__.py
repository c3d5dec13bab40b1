"""Forecast API over the published warehouse.

Run it with ``make serve`` (``uvicorn serving.api:app --port ${PORT:-8000}``); OpenAPI docs at ``/docs``.
Where it reads: ``$PUBLISHED_WAREHOUSE``, else ``$DATA_DIR/published/warehouse.duckdb``; how it reads:
:mod:`serving.reader`. Layout: :mod:`~serving.api.app` (``create_app``), :mod:`~serving.api.schemas`,
:mod:`~serving.api.routers` (one module per resource), :mod:`~serving.api.dependencies`,
:mod:`~serving.api.errors`, :mod:`~serving.api.model_cache` and :mod:`~serving.api.model_artifact`.
"""

from serving.api.app import create_app
from serving.api.schemas import MAX_PREDICT_ROWS

__all__ = ["MAX_PREDICT_ROWS", "app", "create_app"]

app = create_app()
