"""Drift and degradation checks over the build warehouse's marts, and their record in ``ml.monitoring_checks``.

Each check is a function ``(con, thresholds) -> CheckOutcome``; the SQL runs in DuckDB. Inputs (dbt marts):
``marts.fct_forecast_vs_actual`` (every forecast row beside its actual), ``marts.dim_model_versions`` (the
champion) and ``marts.fct_store_daily_features`` (history and plan rows).

- realised_vs_backtest_accuracy: the champion model's served forecasts' RMSPE over the last 14 days with actuals,
  against the backtest mean RMSPE of the versions that made them; fails above ``realised_vs_backtest_ratio`` times it.
  The retraining policy applies the same rule to the champion version alone (``version_only``), so a version just
  refit is judged on its own forecasts and one shift triggers one refit, not one per week.
- interval_coverage: share of the champion's open days with actuals inside the interval over the last 28 days;
  fails outside ``coverage_min``..``coverage_max``.
- data_drift_psi: population stability index of the last ``psi_window_days`` of history against the
  ``psi_reference_days`` before them, per store type, of open-day sales and customers (bins: the reference's
  deciles) and the open and promo shares (two bins); fails above ``psi_warn``.
- stale_stores: stores without a row in the last ``stale_days`` days of history that the plan has open.
- store_sales_deviation: stores whose actual sales over the last 14 days with actuals are more than
  ``store_deviation`` (40%) away from the champion's forecast for those days.

With no realised forecast yet (or no new data since training) a check passes with value NULL and says why.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import duckdb
import pandas as pd

from monitoring.alerts import send_alert
from settings import Settings
from warehouse.catalog import relation_exists
from warehouse.writeback import TABLE_COLUMNS, append_rows

log = logging.getLogger(__name__)

FORECAST_VS_ACTUAL = "marts.fct_forecast_vs_actual"
MODEL_VERSIONS = "marts.dim_model_versions"
DAILY_FEATURES = "marts.fct_store_daily_features"
SEVERITIES = ("WARN", "ERROR")
PSI_FLOOR = 1e-4  # a bin empty in one period counts as this share, so the PSI stays finite
MAX_LISTED = 20  # stores or cells named in a check's details

class MonitoringInputError(RuntimeError):
    """A mart the checks read is missing, or a threshold setting is invalid."""


@dataclass(frozen=True)
class MonitoringThresholds:
    """Thresholds and severities of the checks; ``MONITOR_<FIELD>`` (upper case) overrides each one."""

    realised_vs_backtest_ratio: float = 1.25
    realised_window_days: int = 14
    realised_vs_backtest_severity: str = "ERROR"
    coverage_min: float = 0.70
    coverage_max: float = 0.90
    coverage_window_days: int = 28
    coverage_severity: str = "WARN"
    psi_warn: float = 0.2
    psi_min_rows: int = 30  # fewer new (or reference) observations in a cell: its PSI is noise, not evaluated
    psi_window_days: int = 28  # the recent days compared (4 weeks: whole promo cycles, not one promo week)
    psi_reference_days: int = 84  # ... with the 12 weeks before them
    drift_severity: str = "WARN"
    stale_days: int = 7
    stale_severity: str = "WARN"
    store_deviation: float = 0.40
    store_deviation_days: int = 14
    store_deviation_severity: str = "WARN"

    def __post_init__(self):
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if f.name.endswith("_severity") and value not in SEVERITIES:
                raise MonitoringInputError(f"MONITOR_{f.name.upper()}={value!r}: expected one of {SEVERITIES}")
            if not f.name.endswith("_severity") and value < 0:
                raise MonitoringInputError(f"MONITOR_{f.name.upper()}={value!r}: must not be negative")
        if self.coverage_min > self.coverage_max:
            raise MonitoringInputError(f"MONITOR_COVERAGE_MIN={self.coverage_min} is above "
                                       f"MONITOR_COVERAGE_MAX={self.coverage_max}")

    @classmethod
    def from_overrides(cls, overrides: Iterable[tuple[str, str]] | Mapping[str, str]) -> MonitoringThresholds:
        """Defaults with ``overrides`` ((name, text) pairs, e.g. Settings.monitor_overrides) parsed to each field's
        type; an unknown name or an unparsable value is an error naming the variable."""
        fields = {f.name: f for f in dataclasses.fields(cls)}
        pairs = overrides.items() if isinstance(overrides, Mapping) else overrides
        values: dict[str, Any] = {}
        for name, text in pairs:
            if name not in fields:
                raise MonitoringInputError(f"MONITOR_{name.upper()} is not a monitoring setting; known: "
                                           + ", ".join(f"MONITOR_{n.upper()}" for n in fields))
            kind = {"float": float, "int": int, "str": str}[fields[name].type]
            try:
                values[name] = text.strip().upper() if kind is str else kind(text)
            except ValueError:
                raise MonitoringInputError(f"MONITOR_{name.upper()}={text!r} is not a {kind.__name__}") from None
        return cls(**values)

    @classmethod
    def from_settings(cls, settings: Settings) -> MonitoringThresholds:
        return cls.from_overrides(settings.monitor_overrides)


@dataclass(frozen=True)
class CheckOutcome:
    check: str
    severity: str
    passed: bool
    value: float | None
    threshold: float | None
    details: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        value = "n/a" if self.value is None else f"{self.value:.4g}"
        return (f"{self.check} {'passed' if self.passed else 'FAILED'} ({self.severity}): value {value}, "
                f"threshold {self.threshold:g}" if self.threshold is not None else
                f"{self.check} {'passed' if self.passed else 'FAILED'} ({self.severity}): value {value}")


# ------------------------------------------------------------------------------------------ inputs


def _require(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    missing = [t for t in tables if not relation_exists(con, *t.split("."))]
    if missing:
        raise MonitoringInputError(f"the monitoring checks read {', '.join(missing)}, which the warehouse does not "
                                   "have: build the dbt forecast marts first")


def _champion(con) -> dict[str, Any] | None:
    _require(con, MODEL_VERSIONS)
    row = con.execute(f"SELECT model, model_version, train_start, train_end, mean_rmspe FROM {MODEL_VERSIONS} "
                      "WHERE is_champion ORDER BY trained_at DESC LIMIT 1").fetchone()
    return None if row is None else dict(zip(("model", "model_version", "train_start", "train_end", "mean_rmspe"),
                                              row))


def _rows(con, sql: str, params: list | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params or [])
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def _no_data(check: str, severity: str, threshold: float, note: str, **details) -> CheckOutcome:
    return CheckOutcome(check, severity, True, None, threshold, {"note": note, **details})


def _realised_rows(window_days: int, version_only: bool = False) -> str:
    """The champion model's forecast rows with actuals (``?`` = the model; with ``version_only`` a second ``?`` =
    the version) in the last ``window_days`` days that have actuals for it, each store-day once: by the latest
    origin that forecast it."""
    version = "and model_version = ?" if version_only else ""
    return f"""
        with realised as (
            select * from {FORECAST_VS_ACTUAL} where model = ? {version} and actual_sales is not null
            -- a store-day is scored by the latest forecast made for it (the one that was served)
            qualify row_number() over (partition by store_id, forecast_date
                                       order by origin_date desc, model_version desc) = 1
        )
        select * from realised
        where forecast_date > (select max(forecast_date) from realised) - {int(window_days)}
    """


# ------------------------------------------------------------------------------------------ checks


def realised_vs_backtest(con, thresholds: MonitoringThresholds, version_only: bool = False) -> CheckOutcome:
    """The served forecasts of the champion model (``version_only``: of the champion version alone, as the
    retraining policy judges it, so that a version just refit is judged on its own forecasts and one shift causes
    one refit) over the last days with actuals, against the backtest RMSPE of the versions that made them."""
    check, severity = "realised_vs_backtest_accuracy", thresholds.realised_vs_backtest_severity
    limit = thresholds.realised_vs_backtest_ratio
    champion = _champion(con)
    if champion is None:
        return _no_data(check, severity, limit, "no champion model yet")
    _require(con, FORECAST_VS_ACTUAL)
    [row] = _rows(con, f"""
        with window_rows as ({_realised_rows(thresholds.realised_window_days, version_only)})
        select
            sqrt(avg(w.abs_pct_error * w.abs_pct_error)) as realised_rmspe,
            avg(v.mean_rmspe) as backtest_rmspe,
            count(*) as n_rows,
            count(distinct w.forecast_date) as n_days,
            min(w.forecast_date) as window_start,
            max(w.forecast_date) as window_end,
            list(distinct w.model_version order by w.model_version) as versions
        from window_rows w
        left join {MODEL_VERSIONS} v using (model, model_version)
        where w.abs_pct_error is not null
    """, [champion["model"], *([champion["model_version"]] if version_only else [])])
    details = {"model": champion["model"], **{k: row[k] for k in ("n_rows", "n_days", "versions")},
               "window": [str(row["window_start"]), str(row["window_end"])]}
    if not row["n_rows"]:
        return _no_data(check, severity, limit, "no actuals yet", model=champion["model"])
    if not row["backtest_rmspe"]:
        return _no_data(check, severity, limit, "the versions that made these forecasts have no backtest RMSPE",
                        **details)
    ratio = row["realised_rmspe"] / row["backtest_rmspe"]
    details.update(realised_rmspe=round(row["realised_rmspe"], 5), backtest_rmspe=round(row["backtest_rmspe"], 5))
    return CheckOutcome(check, severity, ratio <= limit, ratio, limit, details)


def interval_coverage(con, thresholds: MonitoringThresholds) -> CheckOutcome:
    check, severity = "interval_coverage", thresholds.coverage_severity
    low, high = thresholds.coverage_min, thresholds.coverage_max
    champion = _champion(con)
    if champion is None:
        return _no_data(check, severity, low, "no champion model yet")
    _require(con, FORECAST_VS_ACTUAL)
    [row] = _rows(con, f"""
        with window_rows as ({_realised_rows(thresholds.coverage_window_days)})
        select
            avg(cast(in_interval as double)) as coverage,
            count(*) as n_rows,
            min(forecast_date) as window_start,
            max(forecast_date) as window_end
        from window_rows
        where is_open and in_interval is not null
    """, [champion["model"]])
    if not row["n_rows"]:
        return _no_data(check, severity, low, "no actuals yet", model=champion["model"])
    coverage = row["coverage"]
    details = {"model": champion["model"], "band": [low, high], "n_rows": row["n_rows"],
               "window": [str(row["window_start"]), str(row["window_end"])]}
    threshold = low if coverage < (low + high) / 2 else high  # the bound it is nearer to
    return CheckOutcome(check, severity, low <= coverage <= high, coverage, threshold, details)


def data_drift_psi(con, thresholds: MonitoringThresholds) -> CheckOutcome:
    check, severity, limit = "data_drift_psi", thresholds.drift_severity, thresholds.psi_warn
    champion = _champion(con)
    if champion is None:
        return _no_data(check, severity, limit, "no champion model yet")
    _require(con, DAILY_FEATURES)
    # The last psi_window_days of history against the psi_reference_days before them: whole weeks and promo cycles
    # on both sides (a promo week alone is not drift) and close enough in time that season and trend are not either.
    history_end = con.execute(f"select max(sale_date) from {DAILY_FEATURES} where is_history").fetchone()[0]
    new_start = history_end - timedelta(days=thresholds.psi_window_days - 1)
    ref_start, ref_end = new_start - timedelta(days=thresholds.psi_reference_days), new_start - timedelta(days=1)
    deciles = [round(q / 10, 1) for q in range(1, 10)]
    cells = _rows(con, f"""
        with history as (
            select
                store_type, sales, customers, is_open, is_promo,
                case when sale_date >= $new_start then 'new' else 'reference' end as period
            from {DAILY_FEATURES}
            where is_history and (sale_date >= $new_start or sale_date between $ref_start and $ref_end)
        ),
        continuous as (
            select store_type, period, 'sales' as metric, sales as value from history where is_open and sales > 0
            union all
            select store_type, period, 'customers', customers from history where is_open and customers > 0
        ),
        edges as (
            select store_type, metric, list_distinct(quantile_cont(value, {deciles})) as edges
            from continuous where period = 'reference' group by all
        ),
        bins as (
            select c.store_type, c.metric, c.period, len(list_filter(e.edges, lambda edge: edge < c.value)) as bin
            from continuous c join edges e using (store_type, metric)
            union all
            select store_type, 'open_share', period, cast(is_open as integer) from history
            union all
            select store_type, 'promo_share', period, cast(is_promo as integer) from history
        ),
        counts as (
            select
                store_type, metric, bin,
                count(*) filter (where period = 'reference') as reference_rows,
                count(*) filter (where period = 'new') as new_rows
            from bins group by all
        ),
        shares as (
            select
                *,
                greatest(reference_rows / sum(reference_rows) over cell, {PSI_FLOOR}) as reference_share,
                greatest(new_rows / nullif(sum(new_rows) over cell, 0), {PSI_FLOOR}) as new_share
            from counts
            window cell as (partition by store_type, metric)
        )
        select
            store_type, metric,
            sum((new_share - reference_share) * ln(new_share / reference_share)) as psi,
            sum(reference_rows) as reference_rows,
            sum(new_rows) as new_rows
        from shares group by all order by store_type, metric
    """, {"new_start": new_start, "ref_start": ref_start, "ref_end": ref_end})
    windows = {"model": champion["model"], "reference_window": [str(ref_start), str(ref_end)],
               "new_window": [str(new_start), str(history_end)]}
    evaluated = [c for c in cells if min(c["new_rows"], c["reference_rows"]) >= thresholds.psi_min_rows]
    if not evaluated:
        return _no_data(check, severity, limit, "no new data since the training window" if not any(
            c["new_rows"] for c in cells) else f"fewer than {thresholds.psi_min_rows} new rows per store type",
                        **windows)
    worst = max(c["psi"] for c in evaluated)
    details = {**windows, "psi": {f"{c['store_type']}/{c['metric']}": round(c["psi"], 4) for c in evaluated},
               "new_rows": max(c["new_rows"] for c in evaluated),
               "drifted": [f"{c['store_type']}/{c['metric']}" for c in evaluated if c["psi"] > limit][:MAX_LISTED]}
    return CheckOutcome(check, severity, worst <= limit, worst, limit, details)


def stale_stores(con, thresholds: MonitoringThresholds) -> CheckOutcome:
    check, severity, days = "stale_stores", thresholds.stale_severity, thresholds.stale_days
    _require(con, DAILY_FEATURES)
    stores = _rows(con, f"""
        with per_store as (
            select
                store_id,
                max(sale_date) filter (where is_history) as last_history_date,
                count(*) filter (where not is_history and is_open) as open_plan_days
            from {DAILY_FEATURES} group by store_id
        )
        select store_id, last_history_date, open_plan_days
        from per_store
        where open_plan_days > 0
            and coalesce(last_history_date, date '1900-01-01')
                <= (select max(sale_date) from {DAILY_FEATURES} where is_history) - {int(days)}
        order by last_history_date nulls first, store_id
    """)
    details = {"stores": [{"store_id": s["store_id"], "last_history_date": str(s["last_history_date"]),
                           "open_plan_days": s["open_plan_days"]} for s in stores[:MAX_LISTED]]}
    return CheckOutcome(check, severity, not stores, float(len(stores)), float(days), details)


def store_sales_deviation(con, thresholds: MonitoringThresholds) -> CheckOutcome:
    check, severity, limit = "store_sales_deviation", thresholds.store_deviation_severity, thresholds.store_deviation
    champion = _champion(con)
    if champion is None:
        return _no_data(check, severity, limit, "no champion model yet")
    _require(con, FORECAST_VS_ACTUAL)
    stores = _rows(con, f"""
        with window_rows as ({_realised_rows(thresholds.store_deviation_days)})
        select
            store_id,
            sum(actual_sales) as actual_sales,
            sum(sales_pred) as forecast_sales,
            sum(actual_sales) / sum(sales_pred) - 1 as deviation,
            count(distinct forecast_date) as n_days
        from window_rows
        group by store_id
        having sum(sales_pred) > 0
        order by abs(deviation) desc, store_id
    """, [champion["model"]])
    if not stores:
        return _no_data(check, severity, limit, "no actuals yet", model=champion["model"])
    off = [s for s in stores if abs(s["deviation"]) > limit]
    details = {"model": champion["model"], "n_stores": len(stores),
               "stores": [{"store_id": s["store_id"], "deviation": round(s["deviation"], 4),
                           "actual_sales": s["actual_sales"], "forecast_sales": round(s["forecast_sales"], 1)}
                          for s in off[:MAX_LISTED]]}
    return CheckOutcome(check, severity, not off, abs(stores[0]["deviation"]), limit, details)


CHECKS = (realised_vs_backtest, interval_coverage, data_drift_psi, stale_stores, store_sales_deviation)
CHECK_NAMES = ("realised_vs_backtest_accuracy", "interval_coverage", "data_drift_psi", "stale_stores",
               "store_sales_deviation")


def run_checks(con, thresholds: MonitoringThresholds) -> list[CheckOutcome]:
    """Every check's outcome, in ``CHECK_NAMES`` order."""
    return [check(con, thresholds) for check in CHECKS]


# ------------------------------------------------------------------------------------------ record and alert


def record_outcomes(con, outcomes: Iterable[CheckOutcome], run_id: str, checked_at: datetime | None = None) -> int:
    """Append the outcomes to ``ml.monitoring_checks`` (the write-back contract's table) in one transaction; returns
    the rows."""
    checked_at = checked_at or datetime.now(timezone.utc).replace(tzinfo=None)
    rows = pd.DataFrame([{"check_name": o.check, "severity": o.severity, "passed": o.passed, "value": o.value,
                          "threshold": o.threshold, "details": json.dumps(o.details, default=str),
                          "checked_at": checked_at, "run_id": run_id} for o in outcomes],
                        columns=list(TABLE_COLUMNS["monitoring_checks"]))
    con.execute("BEGIN")
    try:
        append_rows(con, "monitoring_checks", rows)
        con.execute("COMMIT")
    except Exception:
        con.execute("ROLLBACK")
        raise
    return len(rows)


def alert_failures(outcomes: Iterable[CheckOutcome], run_id: str, settings: Settings, asset: str | None = None
                   ) -> list[CheckOutcome]:
    """Send an alert for each failed outcome (every severity is WARN or ERROR); returns them."""
    failed = [o for o in outcomes if not o.passed and o.severity in SEVERITIES]
    for outcome in failed:
        send_alert("check_failure", outcome.describe(),
                   {"severity": outcome.severity, "run_id": run_id, "check": outcome.check, "asset": asset,
                    "value": outcome.value, "threshold": outcome.threshold, "details": outcome.details}, settings)
    return failed
