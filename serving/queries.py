"""Reads shared by the API and the dashboard."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import duckdb


def rows(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> list[dict]:
    """Result rows as dicts (non-finite floats as None)."""
    con.execute(sql, params or [])
    names = [d[0] for d in con.description]
    return [{n: _jsonable(v) for n, v in zip(names, row, strict=True)} for row in con.fetchall()]


def _jsonable(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


@dataclass(frozen=True)
class ModelVersions:
    """``marts.dim_model_versions`` of one published copy, looked up by version and model. The flags are
    dbt's (the one definition of latest and champion); nothing is re-derived here."""

    by_version: dict[str, dict]  # model_version -> row
    latest: dict[str, dict]  # model -> its latest version (is_latest: the newest with forecasts)
    latest_trained: dict[str, dict]  # model -> its most recently trained version (with or without forecasts)
    champion: dict | None

    @property
    def models(self) -> list[str]:
        """The models with forecasts."""
        return sorted(self.latest)


def model_versions(con: duckdb.DuckDBPyConnection) -> ModelVersions:
    found = rows(con, "SELECT * FROM marts.dim_model_versions ORDER BY model, trained_at, model_version")
    return ModelVersions(
        by_version={r["model_version"]: r for r in found},
        latest={r["model"]: r for r in found if r["is_latest"]},
        latest_trained={r["model"]: r for r in found if r["is_latest_trained"]},
        champion=next((r for r in found if r["is_champion"]), None),
    )
