"""The retraining policy: does a model refit on this run's data, or does its latest version forecast the new origin?

A new day of sales rarely needs a full retrain.  A model refits when (first match wins, so the reason is the
strongest one):

    asked          the run asked for it (``RetrainingPolicy.force_refit``)
    no version     nothing trained yet, or its artifact folder is gone
    settings       the training profile's parameters or the forecast layout (horizon, interval level) changed
    store set      the stores to forecast are not the stores the version was trained on
    degraded       the monitoring check ``realised_vs_backtest_accuracy`` failed: the champion's realised RMSPE over
                   the last days of actuals exceeds its backtest RMSPE by more than its ratio (monitoring/checks.py
                   owns that rule and its MONITOR_* settings) -- then every model refits, since the data moved
    age            the version was trained more than ``max_age_days`` days ago

otherwise it is ``forecast_only``: the latest version forecasts the new origin with the interval factors it was
calibrated with (:mod:`forecasting.refresh`).  :func:`decide` is a plain function of the facts;
:func:`version_states` reads the versions' facts from the warehouse.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

from forecasting.artifacts import read_meta
from warehouse.catalog import relation_exists

log = logging.getLogger(__name__)

REFIT = "refit"
# ForecastSpec.layout()'s keys: what a version's forecasts depend on beyond its parameters (the fold count may
# shrink on short histories, so it is not compared).
LAYOUT_KEYS = ("horizon_days", "interval")
FORECAST_ONLY = "forecast_only"


@dataclass(frozen=True)
class RetrainingPolicy:
    max_age_days: float = 7.0
    force_refit: bool = False


@dataclass(frozen=True)
class VersionState:
    """What the warehouse and the artifact folder say about a model's latest version."""

    model: str
    model_version: str
    trained_at: datetime
    stores: frozenset[int]
    artifact_dir: Path | None  # None: the folder is gone
    params: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)  # LAYOUT_KEYS as the version was trained


@dataclass(frozen=True)
class Decision:
    model: str
    decision: str  # REFIT or FORECAST_ONLY
    reason: str
    values: dict
    version: VersionState | None = None  # the version that forecasts when FORECAST_ONLY

    @property
    def refit(self) -> bool:
        return self.decision == REFIT


def decide(model: str, latest: VersionState | None, *, stores: frozenset[int], params: dict, layout: dict,
           degradation=None, policy: RetrainingPolicy, now: datetime | None = None) -> Decision:
    """Refit or forecast-only for ``model``, with the reason and the values compared.  ``degradation``: the outcome
    of the monitoring check ``realised_vs_backtest_accuracy`` (monitoring/checks.py owns that rule: ``passed``,
    ``value`` = the ratio, ``threshold``, ``details``), None before there are forecast marts."""
    now = now or datetime.now(timezone.utc)

    def refit(reason: str, **values) -> Decision:
        return Decision(model, REFIT, reason, values)

    if policy.force_refit:
        return refit("asked: force_refit is set")
    if latest is None:
        return refit("no trained version yet")
    base = {"latest_version": latest.model_version}
    if latest.artifact_dir is None:
        return refit(f"the artifact folder of {latest.model_version} is gone", **base)
    changed = sorted(k for k in set(params) | set(latest.params) if params.get(k) != latest.params.get(k))
    if changed:
        return refit(f"model parameters changed: {', '.join(changed)}", **base,
                     changed={k: [latest.params.get(k), params.get(k)] for k in changed})
    moved = sorted(k for k in layout if latest.layout.get(k) != layout[k])
    if moved:
        return refit(f"forecast layout changed: {', '.join(moved)}", **base,
                     changed={k: [latest.layout.get(k), layout[k]] for k in moved})
    if stores != latest.stores:
        added, gone = sorted(stores - latest.stores), sorted(latest.stores - stores)
        return refit(f"store set changed: {len(added)} new, {len(gone)} gone", **base, stores_added=added[:20],
                     stores_gone=gone[:20])
    ratio = None if degradation is None else degradation.value
    realised = {} if ratio is None else {
        "realised_rmspe": degradation.details.get("realised_rmspe"),
        "backtest_rmspe": degradation.details.get("backtest_rmspe"), "realised_days": degradation.details.get("n_days"),
        "ratio": ratio, "max_ratio": degradation.threshold}
    if ratio is not None and not degradation.passed:
        return refit(f"champion degraded: realised RMSPE {realised['realised_rmspe']} over {realised['realised_days']} "
                     f"days is {ratio:.2f}x its backtest {realised['backtest_rmspe']} (limit {degradation.threshold}x)",
                     **base, **realised)
    age_days = (now - _utc(latest.trained_at)).total_seconds() / 86400
    aged = {"age_days": round(age_days, 3), "max_age_days": policy.max_age_days}
    if age_days > policy.max_age_days:
        return refit(f"version {latest.model_version} is {age_days:.1f} days old (limit {policy.max_age_days})",
                     **base, **aged, **realised)
    why = (f"realised/backtest RMSPE {ratio:.2f}x within {degradation.threshold}x" if ratio is not None
           else "no realised forecasts to score yet")
    return Decision(model, FORECAST_ONLY, f"{latest.model_version} is {age_days:.1f} days old; {why}",
                    {**base, **aged, **realised}, version=latest)


def _utc(moment) -> datetime:
    moment = pd.Timestamp(moment).to_pydatetime()
    return moment.replace(tzinfo=timezone.utc) if moment.tzinfo is None else moment


def version_states(con: duckdb.DuckDBPyConnection, models_dir: str | Path) -> dict[str, VersionState]:
    """Each model's latest version with forecasts (``marts.dim_model_versions.is_latest``), the stores it forecast
    at its latest origin, and what its artifact folder says.  Empty before the first run."""
    if not relation_exists(con, "marts", "dim_model_versions"):
        return {}
    rows = con.execute("""
        SELECT v.model, v.model_version, v.trained_at, list(DISTINCT f.store_id) AS stores
        FROM marts.dim_model_versions AS v
        JOIN ml.store_sales_forecast AS f USING (model, model_version)
        WHERE v.is_latest
        GROUP BY ALL
    """).fetchall()
    states = {}
    for model, version, trained_at, stores in rows:
        folder = Path(models_dir) / model / version
        meta = _read_meta(folder)
        states[model] = VersionState(
            model=model, model_version=version, trained_at=trained_at, stores=frozenset(int(s) for s in stores),
            artifact_dir=folder if meta is not None else None,
            params=(meta or {}).get("params", {}),
            layout={k: (meta or {}).get(k) for k in LAYOUT_KEYS})
    return states


def _read_meta(folder: Path) -> dict | None:
    try:
        return read_meta(folder)
    except (OSError, ValueError):
        return None
