"""What the API tells its operators: one JSON log line per request (logger ``api.access``) and Prometheus metrics
(``GET /metrics``: requests and latency per route and status, predictions served, the published version's age).

The log line has the request id (the caller's ``X-Request-ID`` when it is a plain token, else a new one; echoed
in the answer's header), the key id (never the key), method, route (the path template, so ids do not explode the
metrics' labels), status, latency and the published version the request read.
"""

from __future__ import annotations

import contextvars
import json
import logging
import re
import time
import uuid
from datetime import UTC, datetime

from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics
from prometheus_client.core import GaugeMetricFamily
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from serving.reader import PublishedReader, PublishedWarehouseMissing, Session

ACCESS_LOG = "api.access"  # outside the platform's "serving" logger: its lines are JSON, not the platform's format
# The 25 ms latency objective sits on a bucket bound, so the p99 alert compares like with like.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
disable_created_metrics()  # the *_created series double what Prometheus scrapes and nothing here reads them
_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

# The request being answered: the reader notes the published version it opened here (sync routes run in a thread
# with a copy of this context; the dict is shared, so what they note is seen by the middleware).
current_request: contextvars.ContextVar[dict | None] = contextvars.ContextVar("current_request", default=None)


def note(field: str, value) -> None:
    """Record ``field`` (``key_id``, ``published_version``) for the current request's log line."""
    info = current_request.get()
    if info is not None:
        info[field] = value


def note_session(session: Session) -> None:
    note("published_version", session.version_id)


def access_logger() -> logging.Logger:
    """``api.access``: each record's message is a JSON object, written alone on a line to stderr."""
    logger = logging.getLogger(ACCESS_LOG)
    logger.setLevel(logging.INFO)
    if not any(getattr(h, "_platform", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(message)s"))
        handler._platform = True
        logger.addHandler(handler)
    return logger


class PublishedAge:
    """A collector read at scrape time: the served published version and its age in seconds."""

    def __init__(self, reader: PublishedReader):
        self.reader = reader

    def collect(self):
        age = GaugeMetricFamily("api_published_version_age_seconds",
                                "Seconds since the served published copy was published", labels=["version"])
        try:
            with self.reader.session() as s:
                published_at = s.published_at if s.published_at.tzinfo else s.published_at.replace(tzinfo=UTC)
                age.add_metric([s.version_id], (datetime.now(UTC) - published_at).total_seconds())
        except PublishedWarehouseMissing:
            pass  # no sample: the alert on absent() says so
        yield age


class ApiMetrics:
    """The app's Prometheus metrics, in a registry of its own (one per app: tests build many apps)."""

    def __init__(self, reader: PublishedReader):
        self.registry = CollectorRegistry()
        self.requests = Counter("api_requests", "Requests answered", ["method", "route", "status"],
                                registry=self.registry)
        self.latency = Histogram("api_request_duration_seconds", "Time to answer a request",
                                 ["method", "route", "status"], buckets=LATENCY_BUCKETS, registry=self.registry)
        self.predictions = Counter("api_predictions", "Store-day predictions served by POST /predict",
                                   ["model"], registry=self.registry)
        self.registry.register(PublishedAge(reader))


def route_label(scope: Scope) -> str:
    """The matched route's path template; Starlette's plain routes (``/openapi.json``) leave no route in the scope
    but have fixed paths; nothing matched: ``unmatched`` (never the raw path: any 404 would add a label)."""
    route = getattr(scope.get("route"), "path", None)
    if route:
        return route
    return scope["path"] if "endpoint" in scope else "unmatched"


class RequestObserver:
    """Pure ASGI middleware (outermost): times every request, logs it as JSON and counts it in the metrics."""

    def __init__(self, app: ASGIApp, metrics: ApiMetrics):
        self.app = app
        self.metrics = metrics
        self.log = access_logger()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        given = dict(scope.get("headers", ())).get(b"x-request-id", b"").decode("latin-1")
        request_id = given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex
        info = {"key_id": None, "published_version": None}
        token = current_request.set(info)
        status = 500  # what the server answers when the app raises before starting a response

        async def observed_send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, observed_send)
        finally:
            current_request.reset(token)
            seconds = time.perf_counter() - started
            route = route_label(scope)
            labels = (scope["method"], route, str(status))
            self.metrics.requests.labels(*labels).inc()
            self.metrics.latency.labels(*labels).observe(seconds)
            self.log.info(json.dumps({
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"), "request_id": request_id,
                "key_id": info["key_id"], "method": scope["method"], "route": route,
                "status": status, "latency_ms": round(seconds * 1000, 3),
                "published_version": info["published_version"]}))
