"""Dagster resources: where the platform reads and writes, and the DuckDB warehouse."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
from dagster import ConfigurableResource

REPO_ROOT = Path(__file__).resolve().parents[1]


def default_data_dir() -> str:
    return os.environ.get("DATA_DIR", str(REPO_ROOT / "data"))


def default_warehouse_path() -> str:
    return os.environ.get("WAREHOUSE_PATH", str(Path(default_data_dir()) / "warehouse.duckdb"))


class PlatformPaths(ConfigurableResource):
    """Input folder and the git-ignored folder that holds everything the platform writes.

    `raw_data_dir` empty means: use the embedded synthetic default data (generated on first use).
    """

    data_dir: str = default_data_dir()
    raw_data_dir: str = os.environ.get("RAW_DATA_DIR", "")

    @property
    def uses_default_data(self) -> bool:
        return not self.raw_data_dir

    @property
    def input_dir(self) -> Path:
        return Path(self.raw_data_dir) if self.raw_data_dir else Path(self.data_dir) / "default_raw"

    @property
    def models_dir(self) -> Path:
        return Path(self.data_dir) / "models"

    @property
    def published_dir(self) -> Path:
        return Path(self.data_dir) / "published"

    @property
    def reports_dir(self) -> Path:
        return Path(self.data_dir) / "reports"


class DuckDBWarehouse(ConfigurableResource):
    """The DuckDB file that dbt, the checks and the models share.

    DuckDB allows one writer process at a time, so connections are opened per use and closed at once.
    """

    path: str = default_warehouse_path()

    @contextmanager
    def connect(self, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        if not read_only:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        con = duckdb.connect(self.path, read_only=read_only)
        try:
            yield con
        finally:
            con.close()


class TrainingSettings(ConfigurableResource):
    """Model settings: `profile` picks a parameter set of forecasting.training ('default' or 'fast');
    `keep_versions` (>= 2) is how many artifact folders per model stay under DATA_DIR/models after a run."""

    profile: str = os.environ.get("TRAINING_PROFILE", "default")
    keep_versions: int = int(os.environ.get("KEEP_MODEL_VERSIONS", "3"))
