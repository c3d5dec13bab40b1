"""The platform's one Dagster code location: files -> raw -> dbt -> models -> ml -> BI marts -> published copy."""

from pathlib import Path

from dagster import (
    AssetSelection,
    Definitions,
    HookContext,
    define_asset_job,
    in_process_executor,
    materialize,
    success_hook,
)

from orchestration.assets.champion import PINS_KEY, champion_history, champion_pins
from orchestration.assets.dbt import forecast_marts, warehouse_models
from orchestration.assets.guards import GuardSettings, forecast_within_store_history
from orchestration.assets.ml import ml_tables
from orchestration.assets.monitoring import MonitoringSettings, monitoring_checks
from orchestration.assets.models import blend, model_assets
from orchestration.assets.publish import artifact_retention, published_warehouse_asset
from orchestration.assets.raw import raw_tables
from orchestration.assets.segments import customer_sales_segments
from orchestration.automation import (alert_on_run_failure, alert_on_step_failure, daily_forecast_schedule,
                                      raw_files_sensor)
from orchestration.resources import DuckDBWarehouse, PlatformPaths, Retraining, TrainingSettings, run_guard
from settings import configure_logging
from warehouse.dbt import dbt_resource

configure_logging()


@success_hook(required_resource_keys={"run_guard"})
def requires_run_guard(_: HookContext) -> None:
    """Does nothing: Dagster sets up every resource a step's hooks require, so attaching this to every asset makes
    each run -- any subset, however started -- hold the run guard (resources.run_guard) from before its first step
    to after its last."""


BUILD_ASSETS = [raw_tables, warehouse_models, *model_assets, blend, ml_tables, customer_sales_segments, forecast_marts,
                forecast_within_store_history, champion_pins, champion_history, monitoring_checks]
ALL_ASSETS = [assets_def.with_hooks({requires_run_guard, alert_on_step_failure}) for assets_def in
              [*BUILD_ASSETS, published_warehouse_asset(BUILD_ASSETS), artifact_retention]]


def build_resources(**overrides) -> dict:
    resources = {
        "paths": PlatformPaths(),
        "warehouse": DuckDBWarehouse(),
        "training": TrainingSettings(),
        "retraining": Retraining(),
        "dbt": dbt_resource(),
        "run_guard": run_guard,
        "guards": GuardSettings(),
        "monitoring": MonitoringSettings(),
    }
    return {**resources, **overrides}


defs = Definitions(
    assets=ALL_ASSETS,
    jobs=[define_asset_job("forecast_pipeline", selection="*",
                           description="Everything: raw loads, dbt, checks, models (refit or forecast-only), "
                                       "write-back, BI marts, publish."),
          # Launchpad config: ops: {ml__champion_pins: {config: {action: pin, model: ..., model_version: ...}}}
          define_asset_job("set_champion", selection=AssetSelection.assets(PINS_KEY).downstream(),
                           description="Pin (or unpin) the served champion, rebuild the forecast marts that follow "
                                       "it and publish (also `python -m orchestration.champion`).")],
    sensors=[raw_files_sensor, alert_on_run_failure],
    schedules=[daily_forecast_schedule],
    resources=build_resources(),
    # DuckDB takes one writer process at a time: run the steps one after another in one process.
    executor=in_process_executor,
)


def materialize_pipeline(data_dir, raw_dir=None, *, profile: str = "fast", selection=None, instance=None,
                         run_config=None, **resource_overrides):
    """Run every asset and check (or ``selection``'s) in process on ``raw_dir`` (None: the embedded default data),
    writing under ``data_dir``: what the end-to-end tests and their session fixture build. ``instance``: the
    Dagster instance to record the run in (default: an ephemeral one); ``run_config``: e.g. the champion pin's.
    Returns Dagster's result."""
    resources = build_resources(**{
        "paths": PlatformPaths(data_dir=str(data_dir), raw_data_dir=str(raw_dir or "")),
        "warehouse": DuckDBWarehouse(path=str(Path(data_dir) / "warehouse.duckdb")),
        "training": TrainingSettings(profile=profile),
        **resource_overrides,
    })
    return materialize(ALL_ASSETS, resources=resources, selection=selection, instance=instance, run_config=run_config,
                       raise_on_error=False)
