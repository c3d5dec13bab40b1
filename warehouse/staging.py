"""A run commits whole or not at all: it works on a staged copy of the build warehouse, swapped in at its end.

DuckDB has no transaction that spans the processes of a run (dbt is a child process, the raw load, the checks,
the model write-back and the marts each open the file in turn), so a failed step would otherwise leave whatever
the steps before it wrote. Instead, holding the run lock (:mod:`orchestration.run_guard`), a run

1. copies the committed file to ``.<name>.run-<run id>`` beside it (:func:`stage`), after folding any write-ahead
   log into it, so the copy is self-contained;
2. points every reader and writer of the run at the copy (:func:`active_path`: the process-wide switch the
   ``warehouse`` resource and dbt's ``warehouse_path`` var follow; the job runs in one process);
3. when every step passed (or the published copy was written from it), records the run in ``meta.commits``
   inside the copy, CHECKPOINTs and fsyncs it and ``os.replace``-s it onto the committed file (:func:`commit`):
   atomic on POSIX, and readers that have the old file open keep reading it;
4. otherwise deletes the copy (:func:`discard`): the committed file was never opened for writing.

A run killed before step 3 leaves only its copy, which the next run removes (:func:`remove_stale_stages`).
Everything outside a run (the sensor, ``make publish``, ``make champion``, the run summary) reads the committed
file, which therefore only ever holds the state of a run whose checks passed.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from warehouse.publish import fsync_path

log = logging.getLogger(__name__)

_ACTIVE: dict[Path, Path] = {}  # committed file (resolved) -> the staged copy the current run works on
_ACTIVE_LOCK = threading.Lock()
COMMITS_TABLE = "meta.commits"


@dataclass(frozen=True)
class Commit:
    """The run whose state the committed build warehouse holds."""

    run_id: str
    committed_at: datetime  # UTC, naive like every TIMESTAMP in the warehouse


def _key(committed: str | os.PathLike) -> Path:
    return Path(committed).resolve()


def staged_path(committed: str | os.PathLike, run_id: str) -> Path:
    committed = _key(committed)
    return committed.with_name(f".{committed.name}.run-{run_id}")


def _wal(path: Path) -> Path:
    return path.with_name(path.name + ".wal")


def active_path(committed: str | os.PathLike) -> Path:
    """The file to read and write now: the staged copy while a run in this process works on ``committed``,
    else ``committed`` itself."""
    with _ACTIVE_LOCK:
        return _ACTIVE.get(_key(committed), Path(committed))


def is_staged(committed: str | os.PathLike, run_id: str) -> bool:
    """Whether ``run_id``'s staged copy of ``committed`` is still the active file (not yet committed or discarded)."""
    with _ACTIVE_LOCK:
        return _ACTIVE.get(_key(committed)) == staged_path(committed, run_id)


def _checkpoint(path: Path) -> None:
    """Fold ``path``'s write-ahead log into the file (DuckDB replays it on open and checkpoints on close)."""
    with duckdb.connect(str(path)) as con:
        con.execute("CHECKPOINT")


def stage(committed: str | os.PathLike, run_id: str) -> Path:
    """Make the staged copy of ``committed`` for ``run_id`` and make it the :func:`active_path`; call it holding
    the run lock. A warehouse that does not exist yet is staged as a new file."""
    committed = Path(committed)
    staged = staged_path(committed, run_id)
    for leftover in (staged, _wal(staged)):
        leftover.unlink(missing_ok=True)
    if committed.exists():
        if _wal(committed).exists():  # written outside a run and not closed cleanly: take its last writes along
            _checkpoint(committed)
        shutil.copyfile(committed, staged)
        shutil.copymode(committed, staged)
        log.info("run %s works on a staged copy of %s (%.0f MB)", run_id, committed, staged.stat().st_size / 2**20)
    else:
        staged.parent.mkdir(parents=True, exist_ok=True)
    with _ACTIVE_LOCK:
        _ACTIVE[_key(committed)] = staged
    return staged


def _release(committed: Path) -> Path | None:
    with _ACTIVE_LOCK:
        return _ACTIVE.pop(_key(committed), None)


def commit(committed: str | os.PathLike, run_id: str) -> Commit | None:
    """Swap the run's staged copy in as ``committed``, recording the run in it; None when the run never created
    the file (nothing to commit)."""
    committed = Path(committed)
    staged = _release(committed) or staged_path(committed, run_id)
    if not staged.exists():
        return None
    record = Commit(run_id=run_id, committed_at=datetime.now(timezone.utc).replace(tzinfo=None))
    with duckdb.connect(str(staged)) as con:
        con.execute("CREATE SCHEMA IF NOT EXISTS meta")
        con.execute(f"CREATE TABLE IF NOT EXISTS {COMMITS_TABLE} (run_id VARCHAR NOT NULL, "
                    "committed_at TIMESTAMP NOT NULL)")
        con.execute(f"INSERT INTO {COMMITS_TABLE} VALUES (?, ?)", [record.run_id, record.committed_at])
        con.execute("CHECKPOINT")
    fsync_path(staged)
    os.replace(staged, committed)
    fsync_path(committed.parent, directory=True)
    log.info("run %s committed %s", run_id, committed)
    return record


def discard(committed: str | os.PathLike, run_id: str) -> None:
    """Drop the run's staged copy: ``committed`` stays as the last good run left it."""
    committed = Path(committed)
    staged = _release(committed) or staged_path(committed, run_id)
    for path in (staged, _wal(staged)):
        path.unlink(missing_ok=True)
    log.info("run %s changed nothing in %s: its staged copy was discarded", run_id, committed)


def remove_stale_stages(committed: str | os.PathLike) -> list[Path]:
    """Remove the staged copies of runs that died (call it holding the run lock); returns them."""
    committed = Path(committed)
    if not committed.parent.is_dir():
        return []
    stale = sorted(committed.parent.glob(f".{committed.name}.run-*"))
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def last_commit(committed: str | os.PathLike) -> Commit | None:
    """The run whose state ``committed`` holds (None: no run has committed it)."""
    from warehouse.catalog import relation_exists

    committed = Path(committed)
    if not committed.exists():
        return None
    with duckdb.connect(str(committed), read_only=True) as con:
        if not relation_exists(con, "meta", "commits"):
            return None
        row = con.execute(f"SELECT run_id, committed_at FROM {COMMITS_TABLE} "
                          "ORDER BY committed_at DESC LIMIT 1").fetchone()
    return None if row is None else Commit(run_id=row[0], committed_at=row[1])
