"""What the routes share: the app's reader and model cache (FastAPI dependencies), the checked date range,
and lookups cached per published version (store ids, model versions)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Annotated, Any

import orjson
from fastapi import Depends, HTTPException, Query, Request
from fastapi.responses import Response

from serving.api.errors import unprocessable
from serving.api.model_cache import ModelCache
from serving.api.schemas import IsoDate
from serving.queries import ModelVersions, model_versions
from serving.reader import PublishedReader, Session


def get_reader(request: Request) -> PublishedReader:
    return request.app.state.reader


def get_model_cache(request: Request) -> ModelCache:
    return request.app.state.model_cache


Reader = Annotated[PublishedReader, Depends(get_reader)]
Models = Annotated[ModelCache, Depends(get_model_cache)]


@dataclass(frozen=True)
class DateRange:
    start: dt.date | None
    end: dt.date | None


def date_range(
    start: Annotated[IsoDate | None, Query(description="First day (inclusive), YYYY-MM-DD")] = None,
    end: Annotated[IsoDate | None, Query(description="Last day (inclusive), YYYY-MM-DD")] = None,
) -> DateRange:
    """Checked before the published copy is opened: a bad range is a 422 even when nothing is published."""
    if start is not None and end is not None and start > end:
        raise unprocessable(["query", "start"], f"start ({start}) must be on or before end ({end})", str(start))
    return DateRange(start, end)


Dates = Annotated[DateRange, Depends(date_range)]


def fast_json(content: Any) -> Response:
    """The hot endpoints answer with orjson directly: pydantic re-validating 42 rows it just got from typed
    SQL columns costs more than the query. Their response_model still documents the shape."""
    return Response(orjson.dumps(content), media_type="application/json")


def store_ids(session: Session) -> frozenset[int]:
    return session.cached("store_ids", lambda: frozenset(
        r[0] for r in session.con.execute("SELECT store_id FROM marts.dim_stores").fetchall()))


def versions(session: Session) -> ModelVersions:
    """marts.dim_model_versions, once per published version."""
    return session.cached("model_versions", lambda: model_versions(session.con))


def store_not_found(session: Session, store_id: int) -> HTTPException:
    return HTTPException(status_code=404, detail=f"Store {store_id} not found in marts.dim_stores "
                                                 f"(published version {session.version_id}).")


def require_store(session: Session, store_id: int) -> None:
    if store_id not in store_ids(session):
        raise store_not_found(session, store_id)


def resolve_model(session: Session, model: str | None, model_version: str | None) -> tuple[str, str, bool]:
    """(model, version, is_champion) a forecast request names: ``model_version``, else ``model``'s latest
    version, else the champion."""
    info = versions(session)
    if model_version is not None:
        row = info.by_version.get(model_version)
        if row is None or (model is not None and row["model"] != model):
            which = f"of model {model} " if model is not None else ""
            raise HTTPException(status_code=404, detail=f"Model version {model_version!r} {which}not found in "
                                                        "ml.model_registry.")
        if not row["has_forecasts"]:
            raise HTTPException(status_code=404, detail=f"Model version {model_version!r} has no forecasts.")
    elif model is not None:
        row = info.latest.get(model)
        if row is None:
            raise HTTPException(status_code=404, detail=f"No forecasts for model {model!r} in the published "
                                                        f"warehouse; models with forecasts: {info.models}.")
    else:
        row = info.champion
        if row is None:
            raise HTTPException(status_code=404, detail="No forecasts in the published warehouse yet.")
    return row["model"], row["model_version"], bool(row["is_champion"])
