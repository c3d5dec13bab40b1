"""The FastAPI application over the published warehouse (never the build warehouse).

``create_app`` wires the reader (:class:`serving.reader.PublishedReader`), the model cache, the API keys and
rate limit (:mod:`serving.api.security`), the middleware (request log and metrics, CORS, gzip, body cap), the
error handlers and one router per resource; the routes reach the reader through ``request.app.state``.
"""

from __future__ import annotations

import gc
import logging
import os
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.openapi.docs import get_redoc_html
from fastapi.responses import HTMLResponse, Response
from fastapi_offline import FastAPIOffline
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serving.api.body_limit import BodySizeLimit
from serving.api.errors import install_error_handlers
from serving.api.keys import KeyStore
from serving.api.model_cache import ModelCache
from serving.api.observe import ApiMetrics, RequestObserver, note_session
from serving.api.routers import forecasts, health, models, predict, stores
from serving.api.security import RateLimiter, require
from serving.reader import PublishedReader
from settings import Settings

log = logging.getLogger(__name__)
GZIP_MIN_BYTES = 1000  # smaller answers are not worth compressing (a single store's row, /health)
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
    settings = reader.settings
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
    app.state.settings = settings
    # No keys file: an open API (``serving.api.serve`` then listens on loopback only).
    app.state.keys = KeyStore(settings.api_keys_file) if settings.api_keys_file is not None else None
    if app.state.keys is None:
        log.warning("No API_KEYS_FILE: the API answers without authentication (serve it on loopback only).")
    app.state.rate_limiter = RateLimiter(settings.api_rate_limit_per_min)
    app.state.rate_limit_per_min = settings.api_rate_limit_per_min
    app.state.metrics = ApiMetrics(reader)
    reader.on_session = note_session
    install_error_handlers(app)
    # Added innermost first: the observer sees every answer, the 413s and CORS refusals included.
    app.add_middleware(BodySizeLimit, max_bytes=settings.api_max_body_bytes)
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MIN_BYTES)
    if settings.api_cors_origins:
        app.add_middleware(CORSMiddleware, allow_origins=list(settings.api_cors_origins),
                           allow_methods=["GET", "POST"], allow_headers=["Authorization", "Content-Type"])
    app.add_middleware(RequestObserver, metrics=app.state.metrics)
    _add_redoc(app)
    _add_metrics(app)
    app.include_router(health.router, dependencies=[require(None)])
    for module in (stores, forecasts, models):
        app.include_router(module.router, dependencies=[require("read")])
    app.include_router(predict.router, dependencies=[require("predict")])
    return app


def _add_metrics(app: FastAPI) -> None:
    """``/metrics``: Prometheus text (needs a ``read`` key when the API has keys)."""

    @app.get("/metrics", include_in_schema=False, dependencies=[require("read")])
    def metrics() -> Response:
        return Response(generate_latest(app.state.metrics.registry), media_type=CONTENT_TYPE_LATEST)


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
