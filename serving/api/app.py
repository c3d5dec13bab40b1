"""The FastAPI application over the published warehouse (never the build warehouse).

``create_app`` wires the reader (:class:`serving.reader.PublishedReader`), the model cache, the error
handlers and one router per resource; the routes reach the reader through ``request.app.state``.
"""

from __future__ import annotations

import gc
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse
from fastapi_offline import FastAPIOffline

from serving.api.body_limit import BodySizeLimit
from serving.api.errors import install_error_handlers
from serving.api.model_cache import ModelCache
from serving.api.routers import forecasts, health, models, predict, stores
from serving.reader import PublishedReader
from settings import Settings

DOCS_STATIC = "/static-offline-docs"  # where FastAPIOffline serves the packaged Swagger UI and ReDoc files


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
    # /docs (Swagger UI) and /redoc load their scripts from the fastapi-offline package (served by the app under
    # DOCS_STATIC), not from a CDN, so they work without internet.
    app = FastAPIOffline(
        redoc_url=None,  # _add_redoc's instead
        static_url=DOCS_STATIC,
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
    app.add_middleware(BodySizeLimit, max_bytes=reader.settings.api_max_body_bytes)
    _add_redoc(app)
    for module in (health, stores, forecasts, models, predict):
        app.include_router(module.router)
    return app


def _add_redoc(app: FastAPI) -> None:
    """``/redoc`` on the packaged ReDoc. Its sidebar's "API docs by Redocly" logo is an image on Redocly's CDN; the
    page's Content-Security-Policy keeps the browser from fetching it (ReDoc then leaves the logo out)."""

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        response = get_redoc_html(openapi_url=f"{root}{app.openapi_url}", title=f"{app.title} - ReDoc",
                                  redoc_js_url=f"{root}{DOCS_STATIC}/redoc.standalone.js",
                                  redoc_favicon_url=f"{root}{DOCS_STATIC}/favicon.png", with_google_fonts=False)
        response.headers["Content-Security-Policy"] = "img-src 'self' data:"
        return response
