"""Queries shared by the API and the dashboard."""

from __future__ import annotations

import math
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


def model_versions(con: duckdb.DuckDBPyConnection) -> dict:
    """Registry rows with validation RMSPE, mean RMSPE over the validation and backtest folds and whether
    forecasts exist; each model's latest version with forecasts; the champion.

    The champion is the platform's: the (model, version) of ``ml.champion_forecast`` when the published
    copy has it (the write-back's definition: among every model's latest version, the lowest mean RMSPE
    over its backtest and validation folds); otherwise the same rule computed here."""
    registry = rows(con, """
        WITH forecast_versions AS (
            SELECT DISTINCT model, model_version FROM ml.store_sales_forecast
        ), scores AS (
            SELECT model, model_version,
                   any_value(value) FILTER (WHERE split = 'validation') AS rmspe,
                   avg(value) AS mean_rmspe
            FROM ml.model_metrics
            WHERE metric = 'rmspe' AND value IS NOT NULL
              AND (split = 'validation' OR regexp_matches(split, '^backtest_[0-9]+$'))
            GROUP BY ALL
        )
        SELECT r.model, r.model_version, r.trained_at, s.rmspe, s.mean_rmspe,
               fv.model_version IS NOT NULL AS has_forecasts
        FROM ml.model_registry AS r
        LEFT JOIN scores AS s ON s.model = r.model AND s.model_version = r.model_version
        LEFT JOIN forecast_versions AS fv ON fv.model = r.model AND fv.model_version = r.model_version
        ORDER BY r.model, r.trained_at, r.model_version""")
    latest: dict[str, dict] = {}
    for row in registry:
        if row["has_forecasts"]:
            latest[row["model"]] = row  # ordered by trained_at: the last one wins
    latest_any = {row["model"]: row for row in registry}
    by_key = {(r["model"], r["model_version"]): r for r in registry}
    champion = None
    has_view = con.execute(
        "SELECT count(*) FROM (SELECT table_name AS name FROM duckdb_tables() "
        "WHERE database_name = current_database() AND schema_name = 'ml' UNION ALL "
        "SELECT view_name FROM duckdb_views() WHERE database_name = current_database() AND schema_name = 'ml') "
        "WHERE name = 'champion_forecast'").fetchall()[0][0]
    if has_view:
        named = con.execute(
            "SELECT DISTINCT model, model_version FROM ml.champion_forecast LIMIT 2").fetchall()
        if len(named) == 1 and tuple(named[0]) in by_key:
            champion = by_key[tuple(named[0])]
    if champion is None:
        scored = [r for r in latest.values() if r["mean_rmspe"] is not None]
        champion = min(scored, key=lambda r: (r["mean_rmspe"], r["model"])) if scored else \
            next(iter(latest.values()), None)
    return {"rows": registry, "latest": latest, "latest_any": latest_any,
            "by_version": {r["model_version"]: r for r in registry}, "champion": champion,
            "models": sorted(latest)}

