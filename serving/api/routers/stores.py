"""``GET /stores`` and ``GET /stores/{store_id}``: rows of marts.dim_stores."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.responses import Response

from serving.api.dependencies import Reader, fast_json, store_not_found
from serving.api.schemas import Store
from serving.queries import rows

router = APIRouter(tags=["stores"])

StoreId = Annotated[int, PathParam(ge=1, le=2_147_483_647)]
BIGINT_MAX = 2**63 - 1  # OFFSET is a DuckDB BIGINT: a larger value is a 422, not a conversion error (500)


@router.get("/stores", response_model=list[Store], summary="All stores (marts.dim_stores)")
def stores(reader: Reader, limit: Annotated[int, Query(ge=1, le=100_000)] = 10_000,
           offset: Annotated[int, Query(ge=0, le=BIGINT_MAX)] = 0) -> Response:
    with reader.session() as s:
        return fast_json(rows(s.con, "SELECT * FROM marts.dim_stores ORDER BY store_id LIMIT ? OFFSET ?",
                              [limit, offset]))


@router.get("/stores/{store_id}", response_model=Store, summary="One store",
            responses={404: {"description": "Unknown store"}})
def store(reader: Reader, store_id: StoreId) -> dict:
    with reader.session() as s:
        found = rows(s.con, "SELECT * FROM marts.dim_stores WHERE store_id = ?", [store_id])
        if not found:
            raise store_not_found(s, store_id)
        return found[0]
