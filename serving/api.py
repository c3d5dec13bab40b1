"""Forecast API over the published warehouse (never the build warehouse).

Run it with ``make serve`` (``uvicorn serving.api:app --port ${PORT:-8000}``); OpenAPI docs at ``/docs``.
Where it reads: ``$PUBLISHED_WAREHOUSE``, else ``$DATA_DIR/published/warehouse.duckdb``.

Connections. Opening a DuckDB database costs ~10 ms (a new instance), too much per request, and
``duckdb.connect(path)`` would hand out a cached instance of the *old* file after a publish. So each worker
process keeps one in-memory DuckDB instance per published version with the file ATTACHed READ_ONLY, and
gives each request its own cursor on it. Every request ``stat``-s the published path (about a microsecond);
when the file was replaced (new inode/mtime/size) the next request attaches the new file, and the old
instance is dropped once its last request finishes -- until then those requests keep reading the old,
unlinked inode, so every response comes from exactly one version. ``SERVING_CONNECTION_MODE=per_request``
instead ATTACHes and DETACHes the file for every request (slower; see bench/README.md).
"""

from __future__ import annotations

import datetime as dt
import gc
import json
import os
import threading
from collections.abc import Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

import duckdb
import orjson
import pandas as pd
from fastapi import Body, FastAPI, HTTPException, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from forecasting.features import prepare_frame
from serving.features import build_feature_rows
from warehouse.publish import (
    PublishedWarehouseMissing,
    _ident,
    _shared_cursor,
    attach_published,
    published_path,
    reader_instance,
)
from serving.queries import model_versions
from settings import Settings
from serving.queries import rows as _rows

MAX_PREDICT_ROWS = 5000
VERSION_PATTERN = r"^[A-Za-z0-9_.:+\-]{1,64}$"
INTERVAL_NOTE = "sales_lower/sales_upper: the model's 80% prediction interval"


# Model names come from the data (baseline, random_forest, lstm, ... whatever the pipeline trains): a
# well-formed name that has no forecasts is a 404 listing the ones that do.
MODEL_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
ModelParam = Annotated[str | None, Query(pattern=MODEL_PATTERN,
                                         description="A model name, e.g. random_forest. Default: the champion.")]


# ------------------------------------------------------------------------------------------ reading


@dataclass
class Session:
    """One request's view of one published version."""

    con: duckdb.DuckDBPyConnection
    version_id: str
    published_at: dt.datetime
    source_run: str | None
    cache: dict = field(repr=False, default_factory=dict)


class _Snapshot:
    """One published version attached in its own in-memory instance (cached mode)."""

    def __init__(self, path: Path, identity: tuple):
        self.identity = identity
        self.db = reader_instance()
        attach_published(self.db, path, "published")
        self.db.execute("USE published")
        row = self.db.execute("SELECT version_id, published_at, source_run FROM meta.publication").fetchall()[0]
        self.version_id, self.published_at, self.source_run = row
        self.cache: dict = {}
        self._lock = threading.Lock()

    def cursor(self) -> duckdb.DuckDBPyConnection:
        with self._lock:
            cur = self.db.cursor()
        cur.execute("USE published")
        return cur


class PublishedReader:
    """Hands out per-request sessions on the published warehouse; see the module docstring."""

    def __init__(self, path: str | os.PathLike | None = None, mode: str | None = None):
        self.path = published_path(path)
        self.mode = mode or os.environ.get("SERVING_CONNECTION_MODE", "cached")
        if self.mode not in ("cached", "per_request"):
            raise ValueError(f"SERVING_CONNECTION_MODE must be 'cached' or 'per_request', not {self.mode!r}")
        self._snapshot: _Snapshot | None = None
        self._lock = threading.Lock()
        self._caches: dict[str, dict] = {}  # per_request mode: version_id -> derived cache

    def _missing(self) -> PublishedWarehouseMissing:
        return PublishedWarehouseMissing(
            f"No published warehouse at {self.path} yet: the pipeline publishes one after a successful run "
            "(make run).")

    def _identity(self) -> tuple:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            raise self._missing() from None
        return st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size

    def _current_snapshot(self) -> _Snapshot:
        identity = self._identity()
        snap = self._snapshot
        if snap is None or snap.identity != identity:
            with self._lock:
                snap = self._snapshot
                if snap is None or snap.identity != self._identity():
                    try:
                        snap = _Snapshot(self.path, self._identity())
                    except PublishedWarehouseMissing:
                        raise self._missing() from None
                    self._snapshot = snap  # the old one lives on while requests still hold it
        return snap

    @contextmanager
    def session(self) -> Iterator[Session]:
        if self.mode == "cached":
            snap = self._current_snapshot()
            cur = snap.cursor()
            try:
                yield Session(cur, snap.version_id, snap.published_at, snap.source_run, snap.cache)
            finally:
                cur.close()
            return
        cur = _shared_cursor()
        alias = f"published_{threading.get_ident()}_{id(cur)}"
        try:
            try:
                attach_published(cur, self.path, alias)
            except PublishedWarehouseMissing:
                raise self._missing() from None
            try:
                cur.execute(f"USE {_ident(alias)}")
                version_id, published_at, source_run = cur.execute(
                    "SELECT version_id, published_at, source_run FROM meta.publication").fetchall()[0]
                with self._lock:
                    cache = self._caches.setdefault(version_id, {})
                    for old in list(self._caches)[:-2]:
                        del self._caches[old]
                yield Session(cur, version_id, published_at, source_run, cache)
            finally:
                cur.execute("USE memory")
                cur.execute(f"DETACH {_ident(alias)}")
        finally:
            cur.close()


def _fast_json(content: Any) -> Response:
    """The hot endpoints answer with orjson directly: pydantic re-validating 42 rows it just got from typed
    SQL columns costs more than the query. Their response_model still documents the shape."""
    return Response(orjson.dumps(content), media_type="application/json")


def _cached(session: Session, key: str, compute):
    if key not in session.cache:
        session.cache[key] = compute()
    return session.cache[key]


def _store_ids(session: Session) -> frozenset[int]:
    return _cached(session, "store_ids", lambda: frozenset(
        r[0] for r in session.con.execute("SELECT store_id FROM marts.dim_stores").fetchall()))


def _model_versions(session: Session) -> dict:
    """:func:`serving.queries.model_versions`, once per published version."""
    return _cached(session, "model_versions", lambda: model_versions(session.con))


# ------------------------------------------------------------------------------------------ schemas


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    published_version: str
    published_at: dt.datetime
    source_run: str | None
    published_path: str
    connection_mode: str


class Store(BaseModel):
    """A row of marts.dim_stores (every column of it; the main ones are listed)."""

    model_config = ConfigDict(extra="allow")
    store_id: int
    store_type: str | None = None
    assortment: str | None = None
    competition_distance_m: float | None = None
    is_in_promo2: bool | None = None
    promo_interval: str | None = None
    first_history_date: dt.date | None = None
    last_history_date: dt.date | None = None


class ForecastDay(BaseModel):
    date: dt.date
    sales_pred: float
    sales_lower: float
    sales_upper: float
    customers_pred: float | None
    is_open: bool | None = Field(description="From the plan calendar (None when the store-day is not in it).")
    is_promo: bool | None
    sales_actual: float | None = Field(description="Actual sales when the day is in the history, else None.")


class Forecast(BaseModel):
    store_id: int
    model: str
    model_version: str
    is_champion: bool
    published_version: str
    start: dt.date | None
    end: dt.date | None
    interval: str = INTERVAL_NOTE
    rows: list[ForecastDay]


class ForecastMonth(BaseModel):
    month_start: dt.date
    n_days: int
    n_open_days: int
    sales_pred: float
    sales_lower: float = Field(description="Sum of the daily lower bounds.")
    sales_upper: float = Field(description="Sum of the daily upper bounds.")
    customers_pred: float | None
    sales_actual: float | None
    n_actual_days: int


class MonthlyForecast(BaseModel):
    store_id: int
    model: str
    model_version: str
    is_champion: bool
    published_version: str
    rows: list[ForecastMonth]


class ModelVersion(BaseModel):
    model: str
    model_version: str
    trained_at: dt.datetime
    train_start: dt.date
    train_end: dt.date
    n_train_rows: int
    params: Any
    artifact_path: str
    is_latest: bool
    is_champion: bool
    has_forecasts: bool
    metrics: dict[str, dict[str, float | None]] = Field(description="split -> metric -> value")


class Models(BaseModel):
    published_version: str
    champion: dict[str, Any] | None
    models: list[ModelVersion]


def _state_holiday(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("state_holiday must be '0', 'a', 'b' or 'c'")
    if isinstance(value, int) and value == 0:
        return "0"
    return value


class PredictRow(BaseModel):
    """One store-day. Kaggle's column names (Store, Date, Open, Promo, StateHoliday, SchoolHoliday,
    DayOfWeek) are accepted too."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"store": 1, "date": "2015-08-03", "open": True, "promo": True, "state_holiday": "0",
         "school_holiday": False}]})
    store: int = Field(ge=1, le=2_147_483_647, validation_alias=AliasChoices("store", "Store", "store_id"))
    date: dt.date = Field(validation_alias=AliasChoices("date", "Date", "sale_date"))
    open: bool | None = Field(default=True, validation_alias=AliasChoices("open", "Open", "is_open"),
                              description="Null counts as open (as in Kaggle's test.csv).")
    promo: bool = Field(default=False, validation_alias=AliasChoices("promo", "Promo", "is_promo"))
    state_holiday: Literal["0", "a", "b", "c"] = Field(
        default="0", validation_alias=AliasChoices("state_holiday", "StateHoliday"))
    school_holiday: bool = Field(default=False, validation_alias=AliasChoices(
        "school_holiday", "SchoolHoliday", "is_school_holiday"))
    day_of_week: int | None = Field(default=None, ge=1, le=7, validation_alias=AliasChoices(
        "day_of_week", "DayOfWeek"), description="Optional; checked against date (1 = Monday).")

    _coerce_holiday = field_validator("state_holiday", mode="before")(_state_holiday)

    @field_validator("date")
    @classmethod
    def _plausible_date(cls, value: dt.date) -> dt.date:
        if not dt.date(1990, 1, 1) <= value <= dt.date(2100, 12, 31):
            raise ValueError("date must be between 1990-01-01 and 2100-12-31")
        return value

    @model_validator(mode="after")
    def _day_of_week_matches(self) -> PredictRow:
        if self.day_of_week is not None and self.day_of_week != self.date.isoweekday():
            raise ValueError(f"day_of_week {self.day_of_week} does not match date {self.date} "
                             f"(ISO day of week {self.date.isoweekday()}, 1 = Monday)")
        return self


PredictBody = Annotated[
    Annotated[list[PredictRow], Field(min_length=1, max_length=MAX_PREDICT_ROWS)] | PredictRow,
    Body(openapi_examples={
        "one": {"summary": "one store-day", "value": {"store": 1, "date": "2015-08-03", "open": True,
                                                       "promo": True, "state_holiday": "0",
                                                       "school_holiday": False}},
        "many": {"summary": "several store-days", "value": [
            {"store": 1, "date": "2015-08-03", "promo": True},
            {"store": 2, "date": "2015-08-04", "open": False}]},
    }),
]


class Prediction(BaseModel):
    store: int
    date: dt.date
    open: bool
    sales_pred: float
    customers_pred: float


class Predictions(BaseModel):
    model: str
    model_version: str
    published_version: str
    predictions: list[Prediction]


# ------------------------------------------------------------------------------------------ helpers


def _unprocessable(loc: list, msg: str, value: Any = None) -> HTTPException:
    return HTTPException(status_code=422, detail=[{"type": "value_error", "loc": loc, "msg": msg, "input": value}])


def _require_store(session: Session, store_id: int) -> None:
    if store_id not in _store_ids(session):
        raise HTTPException(status_code=404, detail=f"Store {store_id} not found in marts.dim_stores "
                                                    f"(published version {session.version_id}).")


def _resolve_model(session: Session, model: str | None, model_version: str | None) -> tuple[str, str, bool]:
    info = _model_versions(session)
    champion = info["champion"]
    if model_version is not None:
        row = info["by_version"].get(model_version)
        if row is None or (model is not None and row["model"] != model):
            which = f"of model {model} " if model is not None else ""
            raise HTTPException(status_code=404, detail=f"Model version {model_version!r} {which}not found in "
                                                        "ml.model_registry.")
        if not row["has_forecasts"]:
            raise HTTPException(status_code=404, detail=f"Model version {model_version!r} has no forecasts.")
    elif model is not None:
        row = info["latest"].get(model)
        if row is None:
            raise HTTPException(status_code=404, detail=f"No forecasts for model {model!r} in the published "
                                                        f"warehouse; models with forecasts: {info['models']}.")
    else:
        row = champion
        if row is None:
            raise HTTPException(status_code=404, detail="No forecasts in the published warehouse yet.")
    is_champion = champion is not None and row["model_version"] == champion["model_version"] \
        and row["model"] == champion["model"]
    return row["model"], row["model_version"], is_champion


def _check_range(start: dt.date | None, end: dt.date | None) -> None:
    if start is not None and end is not None and start > end:
        raise _unprocessable(["query", "start"], f"start ({start}) must be on or before end ({end})", str(start))


def _artifact_dir(raw: str, published: Path) -> Path | None:
    path = Path(raw)
    candidates = [path] if path.is_absolute() else [
        Settings.from_env().data_dir / path, published.parent.parent / path, Path.cwd() / path]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
        if candidate.is_file():
            return candidate.parent
    return None


class _ModelCache:
    """The last loaded random forest per artifact folder (loading takes a while; predicting does not)."""

    def __init__(self, size: int = 2):
        self.size = size
        self._items: dict[tuple, Any] = {}
        self._lock = threading.Lock()

    def get(self, directory: Path):
        from forecasting.models import get_model

        module = get_model("random_forest")
        stamp = max((p.stat().st_mtime_ns for p in directory.iterdir() if p.is_file()), default=0)
        key = (str(directory), stamp)
        with self._lock:
            if key not in self._items:
                self._items[key] = module.load(directory)
                while len(self._items) > self.size:
                    self._items.pop(next(iter(self._items)))
            return module, self._items[key]


# ------------------------------------------------------------------------------------------ app


def create_app(published: str | os.PathLike | None = None, *, mode: str | None = None) -> FastAPI:
    reader = PublishedReader(published, mode)
    models = _ModelCache()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        # Everything imported so far lives as long as the process: keep it out of the cyclic GC's full
        # collections (fewer, shorter pauses in the latency tail). Undone at shutdown.
        gc.collect()
        gc.freeze()
        try:
            yield
        finally:
            gc.unfreeze()

    app = FastAPI(
        lifespan=lifespan,
        title="Rossmann forecast API",
        version="1.0.0",
        description=(
            "Daily six-week sales forecasts per store with 80% intervals, model accuracy and live random "
            f"forest predictions, read from the published warehouse `{reader.path}` (a read-only copy the "
            "pipeline replaces atomically after each successful run; the build warehouse is never opened)."),
    )
    app.state.reader = reader

    @app.exception_handler(PublishedWarehouseMissing)
    async def _no_warehouse(request: Request, exc: PublishedWarehouseMissing):
        return JSONResponse(status_code=503, content={"detail": str(exc)})

    # A published copy without the tables/columns an endpoint reads (an older or partial copy), or one that
    # cannot be read: 503 with the reason. Any other DuckDB error is a bug and stays a 500.
    @app.exception_handler(duckdb.CatalogException)
    @app.exception_handler(duckdb.BinderException)
    @app.exception_handler(duckdb.IOException)
    async def _warehouse_error(request: Request, exc: duckdb.Error):
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return JSONResponse(status_code=503, content={
            "detail": f"The published warehouse cannot answer this request ({type(exc).__name__}: {first_line}). "
                      "It may predate the tables this endpoint reads; the next successful run republishes it."})

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        return JSONResponse(status_code=422, content={"detail": _clean_errors(exc)})

    @app.get("/", include_in_schema=False)
    def root() -> dict:
        return {"service": app.title, "docs": "/docs", "openapi": "/openapi.json", "health": "/health"}

    @app.get("/health", response_model=Health, summary="Published version and time",
             responses={503: {"description": "Nothing published yet"}})
    def health() -> dict:
        with reader.session() as s:
            return {"published_version": s.version_id, "published_at": s.published_at,
                    "source_run": s.source_run, "published_path": str(reader.path),
                    "connection_mode": reader.mode}

    @app.get("/stores", response_model=list[Store], summary="All stores (marts.dim_stores)")
    def stores(limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
               offset: Annotated[int, Query(ge=0)] = 0) -> Response:
        with reader.session() as s:
            return _fast_json(_rows(s.con, "SELECT * FROM marts.dim_stores ORDER BY store_id LIMIT ? OFFSET ?",
                                    [limit, offset]))

    @app.get("/stores/{store_id}", response_model=Store, summary="One store",
             responses={404: {"description": "Unknown store"}})
    def store(store_id: Annotated[int, PathParam(ge=1, le=2_147_483_647)]) -> dict:
        with reader.session() as s:
            found = _rows(s.con, "SELECT * FROM marts.dim_stores WHERE store_id = ?", [store_id])
            if not found:
                raise HTTPException(status_code=404, detail=f"Store {store_id} not found in marts.dim_stores "
                                                            f"(published version {s.version_id}).")
            return found[0]

    @app.get("/stores/{store_id}/forecast", response_model=Forecast, summary="Daily forecast of one store",
             description="Daily rows with the 80% interval. Default model: the champion (among each model's "
                         "latest version, the lowest mean RMSPE over its validation and backtest folds -- the "
                         "model of ml.champion_forecast); `model` picks a model's latest version, "
                         "`model_version` a specific one.",
             responses={404: {"description": "Unknown store or model version"}})
    def forecast(
        store_id: Annotated[int, PathParam(ge=1, le=2_147_483_647)],
        start: Annotated[dt.date | None, Query(description="First day (inclusive), YYYY-MM-DD")] = None,
        end: Annotated[dt.date | None, Query(description="Last day (inclusive), YYYY-MM-DD")] = None,
        model: ModelParam = None,
        model_version: Annotated[str | None, Query(pattern=VERSION_PATTERN)] = None,
    ) -> Response:
        _check_range(start, end)
        with reader.session() as s:
            _require_store(s, store_id)
            name, version, is_champion = _resolve_model(s, model, model_version)
            rows = _rows(s.con, """
                SELECT f.forecast_date AS date, f.sales_pred, f.sales_lower, f.sales_upper, f.customers_pred,
                       d.is_open, d.is_promo, d.sales AS sales_actual
                FROM ml.store_sales_forecast AS f
                LEFT JOIN marts.fct_store_daily_features AS d
                  ON d.store_id = $store AND d.sale_date = f.forecast_date
                WHERE f.store_id = $store AND f.model = $model AND f.model_version = $version
                  AND ($start IS NULL OR f.forecast_date >= $start)
                  AND ($end IS NULL OR f.forecast_date <= $end)
                ORDER BY f.forecast_date""",
                {"store": store_id, "model": name, "version": version, "start": start, "end": end})
            return _fast_json({"store_id": store_id, "model": name, "model_version": version,
                               "is_champion": is_champion, "published_version": s.version_id, "start": start,
                               "end": end, "interval": INTERVAL_NOTE, "rows": rows})

    @app.get("/stores/{store_id}/forecast/monthly", response_model=MonthlyForecast,
             summary="Monthly totals of one store's forecast",
             responses={404: {"description": "Unknown store or model version"}})
    def forecast_monthly(
        store_id: Annotated[int, PathParam(ge=1, le=2_147_483_647)],
        start: Annotated[dt.date | None, Query()] = None,
        end: Annotated[dt.date | None, Query()] = None,
        model: ModelParam = None,
        model_version: Annotated[str | None, Query(pattern=VERSION_PATTERN)] = None,
    ) -> Response:
        _check_range(start, end)
        with reader.session() as s:
            _require_store(s, store_id)
            name, version, is_champion = _resolve_model(s, model, model_version)
            rows = _rows(s.con, """
                SELECT CAST(date_trunc('month', f.forecast_date) AS DATE) AS month_start,
                       CAST(count(*) AS INTEGER) AS n_days,
                       CAST(count(*) FILTER (WHERE coalesce(d.is_open, f.sales_pred > 0)) AS INTEGER) AS n_open_days,
                       sum(f.sales_pred) AS sales_pred, sum(f.sales_lower) AS sales_lower,
                       sum(f.sales_upper) AS sales_upper, sum(f.customers_pred) AS customers_pred,
                       sum(d.sales) AS sales_actual, CAST(count(d.sales) AS INTEGER) AS n_actual_days
                FROM ml.store_sales_forecast AS f
                LEFT JOIN marts.fct_store_daily_features AS d
                  ON d.store_id = $store AND d.sale_date = f.forecast_date
                WHERE f.store_id = $store AND f.model = $model AND f.model_version = $version
                  AND ($start IS NULL OR f.forecast_date >= $start)
                  AND ($end IS NULL OR f.forecast_date <= $end)
                GROUP BY ALL ORDER BY month_start""",
                {"store": store_id, "model": name, "version": version, "start": start, "end": end})
            return _fast_json({"store_id": store_id, "model": name, "model_version": version,
                               "is_champion": is_champion, "published_version": s.version_id, "rows": rows})

    @app.get("/models", response_model=Models, summary="Model registry and validation metrics")
    def list_models(model: ModelParam = None,
                    latest_only: Annotated[bool, Query(description="Only each model's latest version")] = False
                    ) -> dict:
        with reader.session() as s:
            info = _model_versions(s)
            registry = _rows(s.con, "SELECT * FROM ml.model_registry ORDER BY model, trained_at, model_version")
            metrics: dict[tuple, dict] = {}
            for m in _rows(s.con, "SELECT model, model_version, split, metric, value FROM ml.model_metrics"):
                metrics.setdefault((m["model"], m["model_version"]), {}).setdefault(m["split"], {})[m["metric"]] = \
                    m["value"]
            champion = info["champion"]
            out = []
            for r in registry:
                if model is not None and r["model"] != model:
                    continue
                latest = info["latest"].get(r["model"]) or info["latest_any"].get(r["model"])
                is_latest = latest is not None and latest["model_version"] == r["model_version"]
                if latest_only and not is_latest:
                    continue
                params = r.get("params")
                if isinstance(params, str):
                    try:
                        params = json.loads(params)
                    except ValueError:
                        pass
                out.append({**r, "params": params, "is_latest": is_latest,
                            "is_champion": champion is not None and champion["model"] == r["model"]
                            and champion["model_version"] == r["model_version"],
                            "has_forecasts": info["by_version"].get(r["model_version"], {}).get("has_forecasts",
                                                                                               False),
                            "metrics": metrics.get((r["model"], r["model_version"]), {})})
            champ = None if champion is None else {
                "model": champion["model"], "model_version": champion["model_version"],
                "validation_rmspe": champion["rmspe"], "mean_rmspe": champion["mean_rmspe"]}
            return {"published_version": s.version_id, "champion": champ, "models": out}

    @app.post("/predict", response_model=Predictions, summary="Live random forest predictions",
              description="One store-day object or an array of up to 5000. Features are built like the "
                          "feature mart's: calendar from the date, store attributes from marts.dim_stores, "
                          "holiday/closure distances over the requested rows and the plan/history around "
                          "them. Uses the latest random forest in ml.model_registry unless `model_version` "
                          "is given.",
              responses={404: {"description": "Unknown store or model version"},
                         503: {"description": "No published warehouse or no model artifact"}})
    def predict(payload: PredictBody,
                model_version: Annotated[str | None, Query(pattern=VERSION_PATTERN)] = None) -> dict:
        rows = payload if isinstance(payload, list) else [payload]
        with reader.session() as s:
            unknown = sorted({r.store for r in rows} - _store_ids(s))
            if unknown:
                raise HTTPException(status_code=404, detail=f"Unknown store(s) {unknown[:20]} (not in "
                                                            "marts.dim_stores).")
            info = _model_versions(s)
            if model_version is not None:
                reg = info["by_version"].get(model_version)
                if reg is None or reg["model"] != "random_forest":
                    raise HTTPException(status_code=404, detail=f"Random forest version {model_version!r} not "
                                                                "found in ml.model_registry.")
            else:
                reg = info["latest_any"].get("random_forest")
                if reg is None:
                    raise HTTPException(status_code=503, detail="No random forest in ml.model_registry yet.")
            version = reg["model_version"]
            artifact = s.con.execute(
                "SELECT artifact_path FROM ml.model_registry WHERE model = 'random_forest' AND model_version = ?",
                [version]).fetchall()[0][0]
            request = pd.DataFrame({
                "store_id": [r.store for r in rows],
                "sale_date": [r.date for r in rows],
                "is_open": pd.array([r.open for r in rows], dtype="boolean"),
                "is_promo": [r.promo for r in rows],
                "state_holiday": [r.state_holiday for r in rows],
                "is_school_holiday": [r.school_holiday for r in rows],
            })
            features = build_feature_rows(s.con, request)
            published_version = s.version_id
        directory = _artifact_dir(artifact, reader.path)
        if directory is None:
            raise HTTPException(status_code=503, detail=f"The artifact of random_forest {version} is not at "
                                                        f"{artifact!r} (nor under DATA_DIR).")
        module, fitted = models.get(directory)
        features["__row"] = range(len(features))
        frame = prepare_frame(features)  # sorted by store and date; __row restores the request order
        pred = module.predict(fitted, None, frame)
        order = frame["__row"].to_numpy().argsort()
        sales = pred["sales_pred"].to_numpy()[order]
        customers = pred["customers_pred"].to_numpy()[order]
        is_open = request["is_open"].fillna(True).to_numpy(bool)
        return {"model": "random_forest", "model_version": version, "published_version": published_version,
                "predictions": [
                    {"store": r.store, "date": r.date, "open": bool(op), "sales_pred": float(sp),
                     "customers_pred": float(cp)}
                    for r, op, sp, cp in zip(rows, is_open, sales, customers, strict=True)]}

    return app


def _clean_errors(exc: RequestValidationError) -> list[dict]:
    """FastAPI's 422 details, with the union body (one row | list of rows) reported as one shape."""
    errors = list(exc.errors())
    body = getattr(exc, "body", None)

    def branch(loc) -> str | None:  # the union member an error belongs to: "list", "row" or None
        if len(loc) > 1 and loc[0] == "body" and isinstance(loc[1], str) and "PredictRow" in loc[1]:
            return "list" if loc[1].startswith("list[") else "row"
        return None

    if any(branch(e.get("loc", ())) for e in errors):
        keep = "list" if isinstance(body, list) else "row" if isinstance(body, dict) else None
        cleaned = []
        for e in errors:
            loc = list(e.get("loc", ()))
            if branch(loc):
                if branch(loc) != keep:
                    continue
                e = {**e, "loc": ["body", *loc[2:]]}
            cleaned.append(e)
        if keep is None:
            cleaned = [e for e in cleaned if e.get("loc", [None])[0] != "body"] + [{
                "type": "body_type", "loc": ["body"], "input": body,
                "msg": "The body must be one store-day object or a non-empty array of them "
                       f"(at most {MAX_PREDICT_ROWS})."}]
        errors = cleaned
    out = []
    for e in errors:
        e = {k: v for k, v in e.items() if k != "url"}
        if "ctx" in e:  # exception objects in ctx are not JSON
            e["ctx"] = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
                        for k, v in e["ctx"].items()}
        out.append(e)
    return out


app = create_app()
