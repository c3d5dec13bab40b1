"""Champion pins and the champion's history, in schema `ml`.

The champion is dbt's (``marts.dim_model_versions``: the lowest recency-weighted backtest RMSPE among the latest versions,
unless a person pinned a version).  This module owns what people and runs change about it:

- ``ml.champion_pins``: at most one row, the pinned version; empty = the rule decides.
- ``ml.champion_history``: every change of the served champion, appended: automatic promotions (a run's new
  champion), pins and unpins, with when, what, from, to, why and who (a person or a run).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone

import duckdb
import pandas as pd

from warehouse.catalog import relation_exists
from warehouse.writeback import ML_SCHEMA, append_rows, ensure_ml_tables

PROMOTION, PIN, UNPIN = "promotion", "pin", "unpin"


class ChampionError(ValueError):
    """A pin that names no servable version, or an unpin without a pin."""


@dataclass(frozen=True)
class Champion:
    model: str
    model_version: str


def current_pin(con: duckdb.DuckDBPyConnection) -> tuple[str, str] | None:
    """The pinned (model, model_version), or None (also before the first run)."""
    if not relation_exists(con, ML_SCHEMA, "champion_pins"):
        return None
    row = con.execute(f"SELECT model, model_version FROM {ML_SCHEMA}.champion_pins "
                      "ORDER BY pinned_at DESC LIMIT 1").fetchone()
    return None if row is None else (row[0], row[1])


def served_champion(con: duckdb.DuckDBPyConnection) -> Champion | None:
    """The champion ``marts.dim_model_versions`` flags now (None before the first forecast marts)."""
    if not relation_exists(con, "marts", "dim_model_versions"):
        return None
    row = con.execute("SELECT model, model_version FROM marts.dim_model_versions WHERE is_champion").fetchone()
    return None if row is None else Champion(*row)


def last_recorded(con: duckdb.DuckDBPyConnection) -> Champion | None:
    if not relation_exists(con, ML_SCHEMA, "champion_history"):
        return None
    row = con.execute(f"SELECT model, model_version FROM {ML_SCHEMA}.champion_history "
                      "ORDER BY changed_at DESC, event DESC LIMIT 1").fetchone()
    return None if row is None or row[0] is None else Champion(*row)


def pin(con: duckdb.DuckDBPyConnection, model: str, model_version: str, *, reason: str, by: str,
        run_id: str = "") -> Champion | None:
    """Pin ``model_version`` of ``model`` as the served champion (replacing any pin) and record it; returns the
    champion it replaces.  The version must have forecasts in ``ml.store_sales_forecast``."""
    ensure_ml_tables(con)
    known = con.execute(f"SELECT count(*) FROM {ML_SCHEMA}.store_sales_forecast WHERE model = ? AND model_version = ?",
                        [model, model_version]).fetchone()[0]
    if not known:
        versions = con.execute(f"SELECT model, max(model_version) FROM {ML_SCHEMA}.store_sales_forecast "
                               "GROUP BY model ORDER BY model").fetchall()
        listing = ", ".join(f"{m} {v}" for m, v in versions) or "none yet"
        raise ChampionError(f"cannot pin {model} {model_version!r}: it has no forecasts in ml.store_sales_forecast "
                            f"(latest versions: {listing})")
    before = served_champion(con)
    now = _now()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {ML_SCHEMA}.champion_pins")
        append_rows(con, "champion_pins", pd.DataFrame([{"model": model, "model_version": model_version,
                                                         "pinned_at": now, "pinned_by": by, "reason": reason}]))
        _record(con, PIN, Champion(model, model_version), before, reason, by, run_id, now)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return before


def unpin(con: duckdb.DuckDBPyConnection, *, reason: str, by: str, run_id: str = "") -> tuple[str, str]:
    """Remove the pin (the rule decides again from the next forecast marts build); returns the pin removed."""
    pinned = current_pin(con)
    if pinned is None:
        raise ChampionError("no champion is pinned")
    now = _now()
    con.execute("BEGIN TRANSACTION")
    try:
        con.execute(f"DELETE FROM {ML_SCHEMA}.champion_pins")
        # "to" is the rule's choice, known after dbt rebuilds dim_model_versions: record_promotion adds that row.
        _record(con, UNPIN, None, Champion(*pinned), reason, by, run_id, now)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return pinned


def record_promotion(con: duckdb.DuckDBPyConnection, run_id: str) -> Champion | None:
    """After the forecast marts are built: a row for the served champion when it differs from the last one recorded
    (the first champion, a new winner of the rule, or the rule's choice after an unpin); returns it, or None."""
    ensure_ml_tables(con)
    served = served_champion(con)
    last = last_recorded(con)
    if served is None or served == last:
        return None
    reason = con.execute("SELECT champion_reason, weighted_rmspe FROM marts.dim_model_versions WHERE is_champion "
                         "AND model = ? AND model_version = ?", [served.model, served.model_version]).fetchone()
    why = f"{reason[0]} ({reason[1]:.4f})" if reason and reason[1] is not None else (reason or ["rule"])[0]
    _record(con, PROMOTION, served, last, why, f"run {run_id}", run_id, _now())
    return served


def _record(con, event: str, to: Champion | None, before: Champion | None, reason: str, by: str, run_id: str,
            at: datetime) -> None:
    append_rows(con, "champion_history", pd.DataFrame([{
        "changed_at": at, "event": event,
        "model": to.model if to else None, "model_version": to.model_version if to else None,
        "from_model": before.model if before else None,
        "from_model_version": before.model_version if before else None,
        "reason": reason, "changed_by": by, "run_id": run_id or None}]))


def _now() -> datetime:
    return datetime.now(timezone.utc).replace(tzinfo=None)
