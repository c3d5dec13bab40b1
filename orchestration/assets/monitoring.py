"""The drift and degradation checks (monitoring/checks.py) as Dagster asset checks on the forecast-vs-actual mart:
non-blocking (a drifting input or a degrading model is news, not a reason to withhold the forecasts), each result
also appended to ``ml.monitoring_checks``, and an alert for each failed one."""

import dataclasses
import json

from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    ConfigurableResource,
    MetadataValue,
    multi_asset_check,
)

from monitoring.checks import CHECK_NAMES, MonitoringThresholds, alert_failures, record_outcomes, run_checks
from orchestration.automation import alert_settings
from orchestration.resources import DuckDBWarehouse, PlatformPaths
from settings import Settings

FORECAST_VS_ACTUAL_KEY = AssetKey(["marts", "fct_forecast_vs_actual"])
_DEFAULTS = MonitoringThresholds.from_settings(Settings.from_env())


class MonitoringSettings(ConfigurableResource):
    """Thresholds and severities of the monitoring checks (defaults: ``MONITOR_*``, README *Daily operation*);
    the fields are :class:`monitoring.checks.MonitoringThresholds`'."""

    realised_vs_backtest_ratio: float = _DEFAULTS.realised_vs_backtest_ratio
    realised_window_days: int = _DEFAULTS.realised_window_days
    realised_vs_backtest_severity: str = _DEFAULTS.realised_vs_backtest_severity
    coverage_min: float = _DEFAULTS.coverage_min
    coverage_max: float = _DEFAULTS.coverage_max
    coverage_window_days: int = _DEFAULTS.coverage_window_days
    coverage_severity: str = _DEFAULTS.coverage_severity
    psi_warn: float = _DEFAULTS.psi_warn
    psi_min_rows: int = _DEFAULTS.psi_min_rows
    psi_window_days: int = _DEFAULTS.psi_window_days
    psi_reference_days: int = _DEFAULTS.psi_reference_days
    drift_severity: str = _DEFAULTS.drift_severity
    stale_days: int = _DEFAULTS.stale_days
    stale_severity: str = _DEFAULTS.stale_severity
    store_deviation: float = _DEFAULTS.store_deviation
    store_deviation_days: int = _DEFAULTS.store_deviation_days
    store_deviation_severity: str = _DEFAULTS.store_deviation_severity

    @property
    def thresholds(self) -> MonitoringThresholds:
        return MonitoringThresholds(**{f.name: getattr(self, f.name)
                                       for f in dataclasses.fields(MonitoringThresholds)})


@multi_asset_check(
    specs=[AssetCheckSpec(name, asset=FORECAST_VS_ACTUAL_KEY, blocking=False,
                          description=f"monitoring/checks.py: {name}") for name in CHECK_NAMES],
)
def monitoring_checks(context: AssetCheckExecutionContext, warehouse: DuckDBWarehouse, paths: PlatformPaths,
                      monitoring: MonitoringSettings):
    """Run every check on the build warehouse, append the outcomes to ml.monitoring_checks, alert on failures."""
    with warehouse.connect() as con:
        outcomes = run_checks(con, monitoring.thresholds)
        record_outcomes(con, outcomes, context.run.run_id)
    alert_failures(outcomes, context.run.run_id, alert_settings(paths.data_dir),
                   asset=FORECAST_VS_ACTUAL_KEY.to_user_string())
    for outcome in outcomes:
        context.log.info(outcome.describe())
        yield AssetCheckResult(
            check_name=outcome.check, asset_key=FORECAST_VS_ACTUAL_KEY, passed=outcome.passed,
            severity=AssetCheckSeverity(outcome.severity),
            metadata={**({"value": MetadataValue.float(outcome.value)} if outcome.value is not None else {}),
                      "threshold": MetadataValue.float(outcome.threshold),
                      "details": MetadataValue.json(json.loads(json.dumps(outcome.details, default=str)))},
        )
