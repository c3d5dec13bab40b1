"""Where a registered model's artifact is, and the last few loaded ones (loading takes a while; predicting
does not)."""

from __future__ import annotations

import threading
from pathlib import Path

from serving.api.model_artifact import Predictor, load_model_artifact


def artifact_dir(raw: str, published: Path, data_dir: Path) -> Path | None:
    """The folder of a registry ``artifact_path``: as written when absolute, else under ``data_dir``, beside the
    published folder or under the working directory; ``None`` when it is nowhere."""
    path = Path(raw)
    candidates = [path] if path.is_absolute() else [data_dir / path, published.parent.parent / path,
                                                    Path.cwd() / path]
    for candidate in candidates:
        if candidate.is_dir():
            return candidate
        if candidate.is_file():
            return candidate.parent
    return None


class ModelCache:
    """The last ``size`` loaded models, keyed by folder and the newest file time in it (a re-saved artifact
    is loaded again)."""

    def __init__(self, size: int = 2):
        self.size = size
        self._items: dict[tuple, Predictor] = {}
        self._lock = threading.Lock()

    def get(self, directory: Path) -> Predictor:
        stamp = max((p.stat().st_mtime_ns for p in directory.iterdir() if p.is_file()), default=0)
        key = (str(directory), stamp)
        with self._lock:
            if key not in self._items:
                self._items[key] = load_model_artifact(directory)
                while len(self._items) > self.size:
                    self._items.pop(next(iter(self._items)))
            return self._items[key]
