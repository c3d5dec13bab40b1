"""What a failed or killed run must leave exactly as it was (issue 11: nothing wrong gets published, nothing good
gets lost): the committed build warehouse, the model artifacts and the published copy of a DATA_DIR."""

from __future__ import annotations

import hashlib
from pathlib import Path


def last_good_state(data_dir: Path) -> dict[str, str]:
    """The build warehouse, the model artifacts and the published copy, file by file (sha-256; folders as "dir"),
    and any other warehouse file beside them (a staged copy, a publisher's temporary file): paths relative to
    ``data_dir``."""
    paths = [*data_dir.glob("*.duckdb*"), *data_dir.glob(".*.duckdb*"), *(data_dir / "models").rglob("*"),
             *(data_dir / "published").glob("*.duckdb*"), *(data_dir / "published").glob(".*.duckdb*")]
    return {p.relative_to(data_dir).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "dir"
            for p in sorted(paths)}


def version_folders(models_dir: Path) -> set[tuple[str, str]]:
    """The (model, version) artifact folders under ``models_dir`` (temporary folders, named ``.*``, left out)."""
    return {(p.parent.name, p.name) for p in models_dir.glob("*/*") if p.is_dir() and not p.name.startswith(".")}
