"""Forecast API over the published warehouse.

Run it with ``make serve`` (:mod:`serving.api.serve`: refuses to listen beyond loopback without API keys);
OpenAPI docs at ``/docs``, Prometheus metrics at ``/metrics``.
Where it reads: ``$PUBLISHED_WAREHOUSE``, else ``$DATA_DIR/published/warehouse.duckdb``; how it reads:
:mod:`serving.reader`. Layout: :mod:`~serving.api.app` (``create_app``), :mod:`~serving.api.schemas`,
:mod:`~serving.api.routers` (one module per resource), :mod:`~serving.api.dependencies`,
:mod:`~serving.api.errors`, :mod:`~serving.api.model_cache` and :mod:`~serving.api.model_artifact`.
"""

from serving.api.app import create_app

__all__ = ["app", "create_app"]

app = create_app()
