"""Error answers: 422s that name the field, 503s for a published copy that is missing or cannot answer, 504 for
queries past ``SERVING_QUERY_TIMEOUT_S``."""

from __future__ import annotations

import json
import logging
from typing import Any

import duckdb
from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from serving.reader import PublishedWarehouseMissing, QueryTimeout


log = logging.getLogger(__name__)
MAX_ECHO_CHARS = 200  # a 422 echoes at most this much of the input it refuses


def echo(value: Any) -> Any:
    """``value`` as a 422 may repeat it: JSON-safe (bytes decoded, other objects as text) and small (anything whose
    JSON is longer than :data:`MAX_ECHO_CHARS` becomes the start of that JSON, marked as cut)."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        value = bytes(value).decode("utf-8", errors="replace")
    try:
        text = json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        value = str(value)
        text = json.dumps(value)
    if len(text) <= MAX_ECHO_CHARS:
        return value
    cut = value if isinstance(value, str) else text
    return cut[:MAX_ECHO_CHARS] + f"... ({len(cut)} characters, cut)"


def unprocessable(loc: list, msg: str, value: Any = None) -> HTTPException:
    """A 422 shaped like FastAPI's own validation errors."""
    return HTTPException(status_code=422,
                         detail=[{"type": "value_error", "loc": loc, "msg": msg, "input": echo(value)}])


async def _no_warehouse(request: Request, exc: PublishedWarehouseMissing) -> JSONResponse:
    log.warning("%s", exc)  # the path is for the operator's log, not for callers
    return JSONResponse(status_code=503, content={
        "detail": "Nothing is published yet: a successful pipeline run publishes the warehouse (make run)."})


async def _timeout(request: Request, exc: QueryTimeout) -> JSONResponse:
    return JSONResponse(status_code=504, content={"detail": str(exc)})


async def _warehouse_error(request: Request, exc: duckdb.Error) -> JSONResponse:
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return JSONResponse(status_code=503, content={
        "detail": f"The published warehouse cannot answer this request ({type(exc).__name__}: {first_line}). "
                  "It may predate the tables this endpoint reads; the next successful run republishes it."})


async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    return JSONResponse(status_code=422, content={"detail": clean_errors(exc)})


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PublishedWarehouseMissing, _no_warehouse)
    app.add_exception_handler(QueryTimeout, _timeout)
    # A published copy without the tables/columns an endpoint reads (an older or partial copy), or one that
    # cannot be read: 503 with the reason. Any other DuckDB error is a bug and stays a 500.
    for error in (duckdb.CatalogException, duckdb.BinderException, duckdb.IOException):
        app.add_exception_handler(error, _warehouse_error)
    app.add_exception_handler(RequestValidationError, _invalid)


def clean_errors(exc: RequestValidationError) -> list[dict]:
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
                       "(at most API_PREDICT_MAX_ROWS)."}]
        errors = cleaned
    out = []
    for e in errors:
        e = {k: v for k, v in e.items() if k != "url"}
        if "input" in e:  # bytes (a non-JSON body) are not JSON; a huge input is not echoed whole
            e["input"] = echo(e["input"])
        if "ctx" in e:  # exception objects in ctx are not JSON
            e["ctx"] = {k: (v if isinstance(v, (str, int, float, bool, type(None))) else str(v))
                        for k, v in e["ctx"].items()}
        out.append(e)
    return out
