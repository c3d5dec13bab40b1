"""Dagster resources: where the platform reads and writes, the DuckDB warehouse, the forecast settings, and the run
guard (one run at a time per DATA_DIR).

Defaults come from :class:`settings.Settings` (the environment, read once); Dagster's launchpad or a test can
override any field.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource, Field, InitResourceContext, resource

from forecasting.folds import ForecastSpec
from forecasting.retraining import RetrainingPolicy
from orchestration.run_guard import guarded_run, has_failed_step, staged_warehouse
from settings import Settings
from warehouse.staging import active_path

_ENV = Settings.from_env()


class PlatformPaths(ConfigurableResource):
    """Input folder and the git-ignored folder that holds everything the platform writes.

    `raw_data_dir` empty means: use the embedded synthetic default data (generated on first use).
    """

    data_dir: str = str(_ENV.data_dir)
    raw_data_dir: str = str(_ENV.raw_data_dir or "")
    reader_group_name: str = _ENV.platform_reader_group or ""  # PLATFORM_READER_GROUP; empty: the owner only

    @property
    def reader_group(self) -> str | None:
        """The group that may read the published copy and the model artifacts (None: the owner only)."""
        return self.reader_group_name or None

    @property
    def settings(self) -> Settings:
        return Settings(data_dir=Path(self.data_dir), raw_data_dir=Path(self.raw_data_dir) if self.raw_data_dir else None)

    @property
    def uses_default_data(self) -> bool:
        return self.settings.uses_default_data

    @property
    def input_dir(self) -> Path:
        return self.settings.input_dir

    @property
    def models_dir(self) -> Path:
        return self.settings.models_dir

    @property
    def published_dir(self) -> Path:
        return self.settings.published_dir

    @property
    def published_path(self) -> Path:
        return self.settings.published_path

    @property
    def reports_dir(self) -> Path:
        return self.settings.reports_dir


class DuckDBWarehouse(ConfigurableResource):
    """The DuckDB file that dbt, the checks and the models share.

    `path` is the committed build warehouse; during a run everything reads and writes the run's staged copy of it
    (`active_path`, warehouse/staging.py), which replaces it only when the run's checks have passed.  DuckDB allows
    one writer process at a time, so connections are opened per use and closed at once.
    """

    path: str = str(_ENV.build_warehouse)

    @property
    def active_path(self) -> Path:
        """The file to read and write now: the running run's staged copy, else the committed file."""
        return active_path(self.path)

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        path = self.active_path
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(str(path), read_only=read_only)
        try:
            yield con
        finally:
            con.close()


class TrainingSettings(ConfigurableResource):
    """The one owner of the forecast layout and the model settings.

    `n_folds`, `horizon_days`, `interval` (the prediction interval's level) and `champion_half_life_folds` (the
    champion rule's fold weights) reach dbt as `--vars` (the store
    statistics' cuts and the assumed plan's length) and the training runner as a :class:`ForecastSpec`, so the
    two always agree. `profile` picks each model's parameter set ('default' or 'fast'); `keep_versions` (>= 2) is
    how many artifact folders per model stay under DATA_DIR/models after a run.
    """

    profile: str = _ENV.training_profile
    keep_versions: int = _ENV.keep_model_versions
    n_folds: int = ForecastSpec.n_folds
    horizon_days: int = ForecastSpec.horizon_days
    interval: float = ForecastSpec.interval
    champion_half_life_folds: float = ForecastSpec.champion_half_life_folds

    @property
    def spec(self) -> ForecastSpec:
        return ForecastSpec(n_folds=self.n_folds, horizon_days=self.horizon_days, interval=self.interval,
                            champion_half_life_folds=self.champion_half_life_folds)


class Retraining(ConfigurableResource):
    """When a model refits and when its latest version only forecasts the new origin (forecasting/retraining.py).
    `force_refit` (FORCE_REFIT, or the launchpad) refits every model on this run; the degradation rule is the
    monitoring check's (the `monitoring` resource's realised_vs_backtest_* thresholds)."""

    max_age_days: float = _ENV.retrain_max_age_days
    force_refit: bool = _ENV.force_refit

    @property
    def policy(self) -> RetrainingPolicy:
        return RetrainingPolicy(max_age_days=self.max_age_days, force_refit=self.force_refit)


@resource(
    required_resource_keys={"paths", "warehouse"},
    config_schema={"timeout_s": Field(float, default_value=_ENV.run_lock_timeout_s,
                                      description="Seconds to wait for another run on the same DATA_DIR "
                                                  "(RUN_LOCK_TIMEOUT_S); 0 = fail at once.")},
    description="Holds DATA_DIR's run lock for the whole run, first clears what killed runs left, and lets the run "
                "work on a staged copy of the build warehouse that replaces it only when every step passed "
                "(orchestration/run_guard.py, warehouse/staging.py).",
)
def run_guard(context: InitResourceContext) -> Iterator[None]:
    """Every asset requires this (definitions.py), so Dagster sets it up once before a run's first step and tears
    it down after its last, whichever way the run was started (`make run`, `materialize`, the UI, the CLI): the job
    runs in process, so one setup spans the run.  A refused run fails before any step, having changed nothing; a
    run with a failed step leaves the build warehouse as it was.  `paths` and `warehouse` come by key, so
    launchpad config of either is what the guard uses."""
    settings = dataclasses.replace(context.resources.paths.settings,
                                   warehouse_path=Path(context.resources.warehouse.path))
    run_id = context.run.run_id
    with guarded_run(settings, run_id, context.resource_config["timeout_s"], context.instance):
        with staged_warehouse(settings, run_id, lambda: not has_failed_step(context.instance, run_id)):
            yield None
