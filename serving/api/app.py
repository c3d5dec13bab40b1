"""The FastAPI application over the published warehouse (never the build warehouse).

``create_app`` wires the reader (:class:`serving.reader.PublishedReader`), the model cache, the error
handlers and one router per resource; the routes reach the reader through ``request.app.state``.
"""

from __future__ import annotations

import gc
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI

from serving.api.errors import install_error_handlers
from serving.api.model_cache import ModelCache
from serving.api.routers import forecasts, health, models, predict, stores
from serving.reader import PublishedReader
from settings import Settings


@asynccontextmanager
async def _lifespan(app: FastAPI):
    # Everything imported so far lives as long as the process: keep it out of the cyclic GC's full
    # collections (fewer, shorter pauses in the latency tail). Undone at shutdown.
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def create_app(published: str | os.PathLike | None = None, *, mode: str | None = None,
               settings: Settings | None = None) -> FastAPI:
    """The API on ``published`` (the file or its folder; default ``settings.published_path``) with connection
    ``mode`` ``cached`` or ``per_request`` (default ``settings.serving_connection_mode``); ``settings`` default
    to :meth:`Settings.from_env`."""
    reader = PublishedReader(published, mode, settings=settings)
    app = FastAPI(
        lifespan=_lifespan,
        title="Rossmann forecast API",
        version="1.0.0",
        description=(
            "Daily six-week sales forecasts per store with prediction intervals, model accuracy and live random "
            f"forest predictions, read from the published warehouse `{reader.path}` (a read-only copy the "
            "pipeline replaces atomically after each successful run; the build warehouse is never opened)."),
    )
    app.state.reader = reader
    app.state.model_cache = ModelCache()
    install_error_handlers(app)
    for module in (health, stores, forecasts, models, predict):
        app.include_router(module.router)
    return app
