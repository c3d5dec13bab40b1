"""Where a registered model's artifact is (and its members', for a blend), and the last few loaded ones
(loading takes a while; predicting does not)."""

from __future__ import annotations

import json
import threading
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import duckdb

from forecasting.blend import BLEND
from serving.api.model_artifact import LoadedModel, context_days, load_model_artifact


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


@dataclass(frozen=True)
class ModelRef:
    """A registered version to predict with: its artifact folder (None: not in the models folders), a blend's
    member versions, and the days of history before each store's forecast origin its predictions read."""

    model: str
    version: str
    directory: Path | None
    members: tuple[ModelRef, ...] = ()
    context_days: int = 0

    def missing(self) -> list[str]:
        """'model version' of each artifact (its own, its members') that is not in the models folders."""
        own = [] if self.directory is not None else [f"{self.model} {self.version}"]
        return own + [name for member in self.members for name in member.missing()]


def model_ref(con: duckdb.DuckDBPyConnection, model: str, version: str, roots: Collection[Path]) -> ModelRef:
    """The :class:`ModelRef` of a version of ``ml.model_registry`` (a blend's members: the versions its registry
    ``params`` name, which it was fitted on)."""
    row = con.execute("SELECT artifact_path, params FROM ml.model_registry WHERE model = ? AND model_version = ?",
                      [model, version]).fetchone()
    raw, params = (row[0] or "", json.loads(row[1] or "{}")) if row else ("", {})
    members = tuple(model_ref(con, name, member_version, roots)
                    for name, member_version in sorted(params.get("members", {}).items())) if model == BLEND else ()
    return ModelRef(model, version, artifact_dir(raw, model, version, roots) if row else None, members,
                    max([context_days(model, params), *(m.context_days for m in members)]))


class ModelCache:
    """The last ``size`` loaded models, keyed by folder and the newest file time in it (a re-saved artifact
    is loaded, and verified, again). A blend predicts with its members' cached loads and keeps them cached while
    it is cached itself (the cache may then hold more than ``size``): each artifact is loaded once."""

    def __init__(self, size: int = 3):
        self.size = size
        self._items: dict[tuple, LoadedModel] = {}
        self._members: dict[tuple, tuple[tuple, ...]] = {}  # a cached blend's key -> its members' keys
        self._lock = threading.RLock()  # reentrant: a blend's load gets its members'

    def get(self, ref: ModelRef, roots: Collection[Path]) -> LoadedModel:
        with self._lock:
            key, model = self._get(ref, roots)
            self._evict(keep=key)  # after a blend's members are all in: they are its, not evictable
            return model

    def _get(self, ref: ModelRef, roots: Collection[Path]) -> tuple[tuple, LoadedModel]:
        if ref.directory is None:
            raise FileNotFoundError(f"no artifact folder for {ref.model} {ref.version}")
        members = [self._get(member, roots) for member in ref.members]
        stamp = max((p.stat().st_mtime_ns for p in ref.directory.rglob("*") if p.is_file()), default=0)
        key = (str(ref.directory), stamp, *(k for k, _ in members))  # a member re-saved: its blend is reloaded
        if key in self._items:
            self._items[key] = self._items.pop(key)  # most recently used last
        else:
            self._items[key] = load_model_artifact(ref.directory, roots, [model for _, model in members])
            self._members[key] = tuple(k for k, _ in members)
        return key, self._items[key]

    def _evict(self, keep: tuple) -> None:
        """Drop the least recently used models beyond ``size``: never ``keep`` nor one a cached blend uses."""
        while len(self._items) > self.size:
            in_use = {keep, *(k for members in self._members.values() for k in members)}
            oldest = next((key for key in self._items if key not in in_use), None)
            if oldest is None:
                return
            del self._items[oldest], self._members[oldest]
