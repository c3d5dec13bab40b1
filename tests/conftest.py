"""Session fixtures: the warehouse the real pipeline builds from small synthetic data, built once per session.

The serving and publishing tests read what dbt, the Great Expectations checks, the models and the publish step
produce (``orchestration.definitions.materialize_pipeline``, profile ``fast``: about 1-2 minutes), never a
hand-written stand-in. Tests must not change the fixture's files: a test that writes copies them first
(:meth:`PipelineWarehouse.copy_build`, or the whole data folder: ``data_copy``).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

N_STORES = 5
HISTORY = ("2014-06-01", "2015-07-31")  # about 14 months
HORIZON_DAYS = 42


@dataclass(frozen=True)
class PipelineWarehouse:
    """What one pipeline run on the synthetic data left behind."""

    raw_dir: Path  # the input files
    data_dir: Path  # DATA_DIR of the run (models/, published/, reports/)
    build_warehouse: Path  # the build warehouse (raw, staging, intermediate, marts, ml)
    published: Path  # the published read-only copy (marts, ml, meta)
    result: Any = field(default=None, repr=False, compare=False)  # Dagster's result of the run (events, metadata)
    n_stores: int = N_STORES
    horizon_days: int = HORIZON_DAYS

    def copy_build(self, target: Path) -> Path:
        """A private, writable copy of the build warehouse (the model artifacts it names stay where they are)."""
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.build_warehouse, target)
        return target


@pytest.fixture(scope="session")
def pipeline_warehouse(tmp_path_factory) -> PipelineWarehouse:
    from ingestion.synthetic import generate_dataset
    from orchestration.definitions import materialize_pipeline

    root = tmp_path_factory.mktemp("pipeline")
    raw_dir, data_dir = root / "raw", root / "data"
    generate_dataset(raw_dir, n_stores=N_STORES, start=HISTORY[0], end=HISTORY[1], horizon_days=HORIZON_DAYS)
    result = materialize_pipeline(data_dir, raw_dir, profile="fast")
    assert result.success, "the pipeline failed on the synthetic test data"
    return PipelineWarehouse(raw_dir=raw_dir, data_dir=data_dir, build_warehouse=data_dir / "warehouse.duckdb",
                             published=data_dir / "published" / "warehouse.duckdb", result=result)



@pytest.fixture
def data_copy(pipeline_warehouse, tmp_path) -> Path:
    """A private copy of the session run's data folder: its committed good state (build warehouse, model artifacts,
    published copy) for a test's own runs."""
    return shutil.copytree(pipeline_warehouse.data_dir, tmp_path / "data")
