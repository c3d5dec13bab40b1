"""Model artifacts: versions, the one writer of a training result, loading and pruning.

``models_dir/<model>/<version>/`` holds the model's own artifact (``Forecaster.save``), ``forecast.parquet``,
``metrics.parquet``, ``backtest.parquet`` and ``meta.json`` (the model name, its registry row, folds, timings,
interval factors).  Versions are UTC timestamps to the microsecond, so they sort by time.
"""

from __future__ import annotations

import json
import logging
import shutil
from datetime import datetime, timezone
from pathlib import Path

log = logging.getLogger(__name__)

META_FILE = "meta.json"


def new_model_version(now: datetime | None = None) -> str:
    """UTC timestamp with microseconds, e.g. ``20261124T101500123456Z``."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def save_result(result, models_dir: str | Path) -> Path:
    """Write a :class:`forecasting.runner.TrainingResult` to its version folder (which must not exist yet) and
    set the registry's ``artifact_path``; returns the folder."""
    directory = Path(models_dir) / result.model / result.model_version
    directory.parent.mkdir(parents=True, exist_ok=True)
    directory.mkdir()
    try:
        model_file = result.forecaster.save(directory) if result.forecaster is not None else None
        result.forecast.to_parquet(directory / "forecast.parquet", index=False)
        result.metrics.to_parquet(directory / "metrics.parquet", index=False)
        result.backtest.to_parquet(directory / "backtest.parquet", index=False)
        result.registry["artifact_path"] = str(directory.resolve())
        meta = {"model": result.model, "model_file": model_file.name if model_file else None,
                "artifact_path": result.registry["artifact_path"], **result.meta}
        (directory / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    log.info("%s %s saved to %s", result.model, result.model_version, directory)
    return directory


def load_forecaster(directory: str | Path):
    """The fitted forecaster saved in an artifact folder (its class from ``meta.json``'s model name)."""
    from forecasting.protocol import forecaster_class

    meta = json.loads((Path(directory) / META_FILE).read_text())
    return forecaster_class(meta["model"]).load(directory)


def prune_artifacts(models_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` version folders of each model under ``models_dir``; returns them.

    The ml tables keep every version's rows; only the artifacts go (a random forest's is ~140 MB on the real
    data).  Run after a successful publish, so the versions just written are the newest; ``keep`` >= 2 also keeps
    the previous run's, which readers of the previous published copy may still be using.
    """
    if keep < 2:
        raise ValueError("prune_artifacts: keep at least 2 versions (this run's and the previous one's)")
    models_dir = Path(models_dir)
    deleted = []
    for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir()) if models_dir.is_dir() else []:
        versions = sorted((p for p in model_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
        for old in versions[keep:]:
            shutil.rmtree(old)
            deleted.append(old)
    return deleted
