"""One run at a time per DATA_DIR, and the clean-up a run does before it starts.

A run holds an exclusive ``flock`` on ``DATA_DIR/.run.lock`` for its whole lifetime (:func:`run_lock`). The OS
drops the lock when the holding process dies, however it dies, so a killed run never leaves a stale lock. The
file records the holder (run id, pid, host, start time) for the message a second run gets, and is emptied on a
clean release: a record still there when the next run takes the lock means its holder died holding it.

Holding the lock, a run is the only writer of DATA_DIR, so it can safely clear what earlier runs that died left
(:func:`recover`): temporary and orphan model artifact folders (also those of runs that failed before their
write-back), temporary files in ``published/``, and Dagster runs left STARTED by a process that no longer exists.

Holding the lock, the run works on a staged copy of the build warehouse (:func:`staged_warehouse`,
:mod:`warehouse.staging`): the publish step publishes it and swaps it in; a run without a publish step commits it
at its end when no step failed; a failed run discards it and the model artifacts it saved.

The Dagster side is :func:`orchestration.resources.run_guard`: a resource that every asset requires, initialised
once per run before the first step and torn down after the last (the job runs in process).
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

import duckdb

from forecasting.artifacts import remove_leftovers
from ingestion.sql_text import sql_string
from settings import Settings
from warehouse.publish import remove_stale_temp_files
from warehouse.staging import commit, discard, is_staged, remove_stale_stages, stage

log = logging.getLogger(__name__)

POLL_S = 0.5


class RunLockBusy(RuntimeError):
    """Another run holds the DATA_DIR's lock."""


@dataclass(frozen=True)
class Holder:
    """Who holds (or held) a DATA_DIR's run lock."""

    run_id: str
    pid: int
    host: str
    started_at: str  # ISO 8601, UTC

    def describe(self) -> str:
        return f"run {self.run_id} (pid {self.pid} on {self.host}, started at {self.started_at})"


def _read_holder(fd: int) -> Holder | None:
    try:
        return Holder(**json.loads(os.pread(fd, 4096, 0) or b"null"))
    except (TypeError, ValueError):  # empty, or being written this instant
        return None


def _busy_message(lock_path: Path, holder: Holder | None, timeout_s: float) -> str:
    who = holder.describe() if holder else "another run (its record is being written)"
    waited = f" after waiting {timeout_s:g}s" if timeout_s > 0 else ""
    return (f"DATA_DIR {lock_path.parent} is in use by {who}{waited}: one run at a time per DATA_DIR. This run "
            "changed nothing; start it again when that run has finished, or set RUN_LOCK_TIMEOUT_S to wait for it.")


@contextmanager
def run_lock(lock_path: str | os.PathLike, run_id: str, timeout_s: float = 0.0) -> Iterator[Holder | None]:
    """Hold the run lock at ``lock_path`` for the block; wait up to ``timeout_s`` seconds for another holder, then
    raise :class:`RunLockBusy` naming it. Yields the record of a previous holder that died holding the lock (its
    record was never cleared), else None."""
    lock_path = Path(lock_path)
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline = time.monotonic() + timeout_s
        waiting = False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _read_holder(fd)
                if time.monotonic() >= deadline:
                    if holder is None:  # caught between its flock and its write: look once more
                        time.sleep(0.05)
                        holder = _read_holder(fd)
                    raise RunLockBusy(_busy_message(lock_path, holder, timeout_s)) from None
                if not waiting:
                    waiting = True
                    log.info("waiting up to %gs for %s to finish", timeout_s,
                             holder.describe() if holder else "another run")
                time.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
        try:
            stale = _read_holder(fd)
            me = Holder(run_id=run_id, pid=os.getpid(), host=socket.gethostname(),
                        started_at=datetime.now(timezone.utc).isoformat(timespec="seconds"))
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(asdict(me)).encode(), 0)
            os.fsync(fd)
            if stale is not None:
                log.warning("%s died holding the run lock of %s", stale.describe(), lock_path.parent)
            yield stale
        finally:
            os.ftruncate(fd, 0)  # a clean release: no record left, so the next run sees nobody died
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# ------------------------------------------------------------------------------------------ recovery


def _attached_rows(path: Path, sql: str, needs: tuple[str, ...]) -> list[tuple] | None:
    """Rows of ``sql`` on the warehouse file at ``path`` (attached read-only as the default catalog); ``[]`` when
    the file or any of the ``needs`` tables ("schema.table") is missing; ``None`` when the file cannot be read."""
    if not path.exists():
        return []
    con = duckdb.connect(":memory:")
    try:
        con.execute(f"ATTACH {sql_string(path)} AS w (READ_ONLY)")
        con.execute("USE w")
        tables = {f"{s}.{t}" for s, t in con.execute(
            "SELECT schema_name, table_name FROM duckdb_tables() WHERE database_name = 'w' UNION ALL "
            "SELECT schema_name, view_name FROM duckdb_views() WHERE database_name = 'w'").fetchall()}
        if not set(needs) <= tables:
            return []
        return con.execute(sql).fetchall()
    except duckdb.Error as exc:
        log.warning("could not read %s: %s", path, exc)
        return None
    finally:
        con.close()


def registered_versions(warehouse: str | os.PathLike) -> set[tuple[str, str]] | None:
    """Every ``(model, model_version)`` of the warehouse's ``ml.model_registry`` (None: unreadable)."""
    rows = _attached_rows(Path(warehouse), "SELECT DISTINCT model, model_version FROM ml.model_registry",
                          ("ml.model_registry",))
    return None if rows is None else set(rows)


def served_versions(published: str | os.PathLike) -> set[tuple[str, str]] | None:
    """The versions a published copy serves, whose artifacts must stay: each model's newest registered version
    (what ``POST /predict`` loads) and ``marts.dim_model_versions``' latest and champion versions, and the member
    versions of any blend among them (a blend predicts with its members' artifacts)."""
    path = Path(published)
    newest = _attached_rows(path, "SELECT model, max(model_version) FROM ml.model_registry GROUP BY model",
                            ("ml.model_registry",))
    flagged = _attached_rows(path, "SELECT model, model_version FROM marts.dim_model_versions "
                                   "WHERE is_latest OR is_champion", ("marts.dim_model_versions",))
    blends = _attached_rows(path, "SELECT model, model_version, params->>'$.members' FROM ml.model_registry "
                                  "WHERE json_extract(params, '$.members') IS NOT NULL", ("ml.model_registry",))
    if newest is None or flagged is None or blends is None:
        return None
    served = set(newest) | set(flagged)
    for model, version, members in blends:
        if (model, version) in served:
            served |= set(json.loads(members).items())
    return served


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a killed child its parent has not reaped yet is a zombie: dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _run_pids(instance, run_id: str) -> set[int]:
    """The pids Dagster recorded for a run: "Started process for run (pid: N)" (a launched run's worker) and
    "Executing steps in process (pid: N)" (emitted before the resources, so before the lock, are set up)."""
    from dagster import DagsterEventType

    pids = set()
    for entry in instance.all_logs(run_id, of_type=DagsterEventType.ENGINE_EVENT):
        pid = entry.dagster_event.event_specific_data.metadata.get("pid") if entry.dagster_event else None
        if pid is not None and str(pid.value).isdigit():
            pids.add(int(pid.value))
    return pids


def fail_dead_runs(instance, current_run_id: str, stale: Holder | None) -> list[str]:
    """Mark failed the STARTED runs of ``instance`` whose processes are all gone (the pids Dagster recorded for
    them, and the lock record of a holder that died); returns their ids. Runs with no known pid, or on another
    host, are left alone: nothing proves them dead."""
    from dagster import DagsterRunStatus, RunsFilter

    host = socket.gethostname()
    failed = []
    for run in instance.get_runs(RunsFilter(statuses=[DagsterRunStatus.STARTED])):
        if run.run_id == current_run_id:
            continue
        pids = _run_pids(instance, run.run_id)
        if stale is not None and stale.run_id == run.run_id:
            if stale.host != host:
                continue
            pids.add(stale.pid)
        if pids and not any(_pid_alive(pid) for pid in pids):
            instance.report_run_failed(run, message=f"Marked failed by run {current_run_id}: its process "
                                                    f"(pid {', '.join(map(str, sorted(pids)))}) died while the run "
                                                    "was STARTED.")
            log.warning("marked run %s failed: its process (pid %s) died while it was STARTED", run.run_id,
                        ", ".join(map(str, sorted(pids))))
            failed.append(run.run_id)
    return failed


@dataclass(frozen=True)
class Recovery:
    """What :func:`recover` cleared."""

    failed_runs: list[str]
    artifacts: list[Path]
    published_temp_files: list[Path]
    staged_warehouses: list[Path]


def recover(settings: Settings, *, run_started: float, instance=None, run_id: str = "",
            stale: Holder | None = None) -> Recovery:
    """Clear what killed runs left; call it holding the run lock.

    Model artifacts go when they are temporary folders, or version folders that neither the build warehouse's nor
    the published copy's ``ml.model_registry`` names, last changed before ``run_started``; when either registry
    cannot be read, no version folder goes.
    """
    failed = []
    if instance is not None:
        try:
            failed = fail_dead_runs(instance, run_id, stale)
        except Exception as exc:  # noqa: BLE001 -- bookkeeping in Dagster's storage; never worth refusing the run
            log.warning("could not check the Dagster instance for dead runs: %s", exc)
    artifacts = remove_orphan_artifacts(settings, before=run_started)
    temp_files = remove_stale_temp_files(settings.published_dir)
    for path in temp_files:
        log.warning("removed %s, left by a publisher that died", path)
    stages = remove_stale_stages(settings.build_warehouse)
    for path in stages:
        log.warning("removed %s, the staged warehouse of a run that died", path)
    return Recovery(failed_runs=failed, artifacts=artifacts, published_temp_files=temp_files, staged_warehouses=stages)


def remove_orphan_artifacts(settings: Settings, before: float) -> list[Path]:
    """Remove temporary model folders and version folders that neither the committed build warehouse's nor the
    published copy's ``ml.model_registry`` names, last changed before ``before``; when either registry cannot be
    read, no version folder goes."""
    build, served = registered_versions(settings.build_warehouse), registered_versions(settings.published_path)
    referenced = None if build is None or served is None else build | served
    if referenced is None:
        log.warning("a model registry could not be read: orphan artifact folders are kept this time")
    artifacts = remove_leftovers(settings.models_dir, referenced, before=before)
    for path in artifacts:
        log.warning("removed %s, left by an earlier run that died or failed before its write-back", path)
    return artifacts


def has_failed_step(instance, run_id: str) -> bool:
    """Whether a step of the run failed (a blocking check that fails fails its step)."""
    from dagster import DagsterEventType

    return bool(instance.get_records_for_run(run_id, of_type=DagsterEventType.STEP_FAILURE, limit=1).records)


@contextmanager
def staged_warehouse(settings: Settings, run_id: str, succeeded: Callable[[], bool]) -> Iterator[Path]:
    """The run works on a staged copy of the build warehouse for the block. Unless the run's publish step has
    already swapped it in, it is committed at the end when ``succeeded()`` (no step failed), else discarded
    together with the model artifacts the run saved, so the build warehouse, the artifacts it references and the
    published copy stay exactly as the last good run left them."""
    committed = settings.build_warehouse
    staged = stage(committed, run_id)
    ok = False
    try:
        yield staged
        ok = succeeded()
    finally:
        if is_staged(committed, run_id):
            if ok:
                commit(committed, run_id)
            else:
                discard(committed, run_id)
                remove_orphan_artifacts(settings, before=time.time())


@contextmanager
def guarded_run(settings: Settings, run_id: str, timeout_s: float = 0.0, instance=None) -> Iterator[Recovery]:
    """Hold ``settings.data_dir``'s run lock for the block, after clearing what killed runs left
    (:func:`recover`; ``instance``: the Dagster instance whose dead runs to mark failed)."""
    with run_lock(settings.run_lock_path, run_id, timeout_s) as stale:
        log.info("run %s holds %s", run_id, settings.run_lock_path)
        yield recover(settings, run_started=time.time(), instance=instance, run_id=run_id, stale=stale)
