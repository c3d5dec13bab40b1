"""Where a registered model's artifact is, and the last few loaded ones (loading takes a while; predicting
does not)."""

from __future__ import annotations

import threading
from collections.abc import Collection
from pathlib import Path

from serving.api.model_artifact import LoadedModel, load_model_artifact


def models_dirs(data_dir: Path, published: Path) -> tuple[Path, ...]:
    """The folders artifacts may be loaded from: ``DATA_DIR/models``, and the models folder of the DATA_DIR the
    published copy lies in (``PUBLISHED_WAREHOUSE`` may point at another platform's copy)."""
    return tuple(dict.fromkeys([data_dir / "models", published.parent.parent / "models"]))


def artifact_dir(raw: str, model: str, version: str, roots: Collection[Path]) -> Path | None:
    """The folder of a registry ``artifact_path`` when it lies inside one of ``roots``, else the version's folder
    in the standard layout (``<root>/<model>/<version>``); ``None`` when neither exists. Paths resolve links
    first, so nothing outside the roots is ever chosen."""
    candidates = [Path(raw)] if Path(raw).is_absolute() else [root / raw for root in roots]
    candidates += [root / model / version for root in roots]
    for candidate in candidates:
        resolved = candidate.resolve()
        if resolved.is_file():
            resolved = resolved.parent
        inside = any(resolved.is_relative_to(root.resolve()) and resolved != root.resolve() for root in roots)
        if inside and resolved.is_dir():
            return resolved
    return None


class ModelCache:
    """The last ``size`` loaded models, keyed by folder and the newest file time in it (a re-saved artifact
    is loaded, and verified, again)."""

    def __init__(self, size: int = 3):
        self.size = size
        self._items: dict[tuple, LoadedModel] = {}
        self._lock = threading.Lock()

    def get(self, directory: Path, roots: Collection[Path]) -> LoadedModel:
        stamp = max((p.stat().st_mtime_ns for p in directory.rglob("*") if p.is_file()), default=0)
        key = (str(directory), stamp)
        with self._lock:
            if key not in self._items:
                self._items[key] = load_model_artifact(directory, roots)
                while len(self._items) > self.size:
                    self._items.pop(next(iter(self._items)))
            return self._items[key]
