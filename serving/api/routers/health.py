"""``GET /health``: which published version is served (never a server path); ``GET /``: where the docs are."""

from __future__ import annotations

from fastapi import APIRouter, Request

from serving.api.dependencies import Reader
from serving.api.schemas import Health

router = APIRouter()


@router.get("/", include_in_schema=False)
def root(request: Request) -> dict:
    return {"service": request.app.title, "docs": "/docs", "openapi": "/openapi.json", "health": "/health"}


@router.get("/health", response_model=Health, summary="Published version and time",
            responses={503: {"description": "Nothing published yet"}})
def health(reader: Reader) -> dict:
    with reader.session() as s:
        return {"published_version": s.version_id, "published_at": s.published_at, "source_run": s.source_run,
                "connection_mode": reader.mode}
