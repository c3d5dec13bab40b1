"""Model artifacts: versions, the one writer of a training result, loading and pruning.

``models_dir/<model>/<version>/`` holds the model's own artifact (``Forecaster.save``), ``forecast.parquet``,
``metrics.parquet``, ``backtest.parquet`` and ``meta.json`` (the model name, its registry row, folds, timings,
interval factors).  Versions are UTC timestamps to the microsecond, so they sort by time.

``meta.json`` records the SHA-256 of every other file at save time; :func:`verify_artifact` checks them (and that the
folder is inside an allowed models folder) before joblib or Keras opens anything, since unpickling runs code.
Folders are 0750 and files 0640 (the owner, and the group: ``PLATFORM_READER_GROUP`` when the caller names it).

A version folder is written as a temporary folder ``models_dir/<model>/.<version>.<random>.tmp`` and renamed into
place when complete, so a killed training leaves at most a temporary folder, never a half-written version;
:func:`remove_leftovers` removes those and orphan versions at the start of the next run.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tempfile
from collections.abc import Collection
from datetime import datetime, timezone
from pathlib import Path

from settings import restrict_permissions

log = logging.getLogger(__name__)

META_FILE = "meta.json"
TEMP_SUFFIX = ".tmp"


class ArtifactIntegrityError(RuntimeError):
    """An artifact folder outside the allowed models folder, without recorded checksums, or whose files changed."""


def file_checksums(directory: Path) -> dict[str, str]:
    """SHA-256 of every file under ``directory`` but ``meta.json``, by path relative to it."""
    out = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file() and p.name != META_FILE):
        digest = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        out[path.relative_to(directory).as_posix()] = digest.hexdigest()
    return out


def verify_artifact(directory: str | Path, models_dirs: Collection[str | Path]) -> dict:
    """``meta.json`` of an artifact folder after checking that the folder lies inside one of ``models_dirs`` (links
    resolved) and that its files match the checksums recorded when it was saved; else ArtifactIntegrityError."""
    directory = Path(directory).resolve()
    roots = [Path(m).resolve() for m in models_dirs]
    if not any(directory.is_relative_to(root) and directory != root for root in roots):
        raise ArtifactIntegrityError(f"artifact folder {directory} is outside the models folder "
                                     f"({', '.join(map(str, roots))}); it is not loaded")
    meta = json.loads((directory / META_FILE).read_text())
    recorded = meta.get("checksums")
    if not recorded:
        raise ArtifactIntegrityError(f"{directory / META_FILE} records no checksums (saved by an older version): "
                                     "the next pipeline run saves a verifiable artifact")
    actual = file_checksums(directory)
    changed = sorted(name for name in recorded.keys() | actual.keys() if recorded.get(name) != actual.get(name))
    if changed:
        raise ArtifactIntegrityError(f"artifact {directory}: files differ from the checksums recorded when it was "
                                     f"saved: {changed[:5]}; it is not loaded")
    return meta


def new_model_version(now: datetime | None = None) -> str:
    """UTC timestamp with microseconds, e.g. ``20261124T101500123456Z``."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def save_result(result, models_dir: str | Path, reader_group: str | None = None) -> Path:
    """Write a :class:`forecasting.runner.TrainingResult` to its version folder (which must not exist yet) and
    set the registry's ``artifact_path``; returns the folder.  Written to a temporary folder beside it and renamed
    into place when complete; readable by the owner and ``reader_group`` only."""
    directory = Path(models_dir) / result.model / result.model_version
    directory.parent.mkdir(parents=True, exist_ok=True)
    if directory.exists():
        raise FileExistsError(f"artifact folder {directory} exists already")
    # Dot-prefixed: never taken for a version (see _version_dirs).
    staging = Path(tempfile.mkdtemp(prefix=f".{result.model_version}.", suffix=TEMP_SUFFIX, dir=directory.parent))
    try:
        model_file = result.forecaster.save(staging) if result.forecaster is not None else None
        result.forecast.to_parquet(staging / "forecast.parquet", index=False)
        result.metrics.to_parquet(staging / "metrics.parquet", index=False)
        result.backtest.to_parquet(staging / "backtest.parquet", index=False)
        artifact_path = str(directory.resolve())
        meta = {"model": result.model, "model_file": model_file.name if model_file else None,
                "artifact_path": artifact_path, **result.meta, "checksums": file_checksums(staging)}
        (staging / META_FILE).write_text(json.dumps(meta, indent=2, default=str))
        restrict_permissions(staging, reader_group)  # a server running as another user reads through the group
        staging.rename(directory)  # atomic: the version folder appears whole or not at all
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    result.registry["artifact_path"] = artifact_path
    log.info("%s %s saved to %s", result.model, result.model_version, directory)
    return directory


def load_forecaster(directory: str | Path, models_dirs: Collection[str | Path] | None = None):
    """The fitted forecaster saved in an artifact folder (its class from ``meta.json``'s model name).  With
    ``models_dirs`` (what a server loads) the folder is verified first (:func:`verify_artifact`)."""
    from forecasting.protocol import forecaster_class

    meta = verify_artifact(directory, models_dirs) if models_dirs is not None else read_meta(directory)
    return forecaster_class(meta["model"]).load(directory)


def read_meta(directory: str | Path) -> dict:
    """An artifact folder's ``meta.json``: its model name, registry row, folds, timings, interval factors."""
    return json.loads((Path(directory) / META_FILE).read_text())


def _version_dirs(models_dir: Path) -> dict[Path, list[Path]]:
    """Each model folder's version folders, newest first (temporary folders excluded)."""
    if not models_dir.is_dir():
        return {}
    return {model_dir: sorted((p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith(".")),
                              key=lambda p: p.name, reverse=True)
            for model_dir in sorted(p for p in models_dir.iterdir() if p.is_dir())}


def prune_artifacts(models_dir: str | Path, keep: int, protect: Collection[tuple[str, str]] = ()) -> list[Path]:
    """Delete all but the newest ``keep`` version folders of each model under ``models_dir``, never one of the
    ``protect``-ed ``(model, model_version)`` pairs (what the published copy serves); returns the deleted folders.

    The ml tables keep every version's rows; only the artifacts go (a random forest's is ~140 MB on the real
    data).  Run after a successful publish, so the versions just written are the newest; ``keep`` >= 2 also keeps
    the previous run's, which readers of the previous published copy may still be using.
    """
    if keep < 2:
        raise ValueError("prune_artifacts: keep at least 2 versions (this run's and the previous one's)")
    protect = set(protect)
    deleted = []
    for model_dir, versions in _version_dirs(Path(models_dir)).items():
        for old in versions[keep:]:
            if (model_dir.name, old.name) not in protect:
                shutil.rmtree(old)
                deleted.append(old)
    return deleted


def remove_leftovers(models_dir: str | Path, referenced: Collection[tuple[str, str]] | None,
                     before: float) -> list[Path]:
    """Remove what killed trainings left under ``models_dir``: temporary folders, and version folders that no
    ``(model, model_version)`` in ``referenced`` names (``None``: unknown, keep them all).  Only folders last
    changed before ``before`` (a POSIX time) go, so nothing a running training writes is touched.  Returns them."""
    models_dir = Path(models_dir)
    referenced = None if referenced is None else set(referenced)
    removed = []
    for model_dir, versions in _version_dirs(models_dir).items():
        temps = [p for p in model_dir.iterdir()
                 if p.is_dir() and p.name.startswith(".") and p.name.endswith(TEMP_SUFFIX)]
        orphans = [] if referenced is None else [p for p in versions if (model_dir.name, p.name) not in referenced]
        for leftover in temps + orphans:
            if leftover.stat().st_mtime < before:
                shutil.rmtree(leftover)
                removed.append(leftover)
    return removed
