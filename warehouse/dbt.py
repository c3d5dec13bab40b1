"""The one way the platform invokes dbt: a ``DbtCliResource`` on ``dbt_project/`` with the warehouse and the
forecast layout passed as ``--vars`` (nothing goes through the environment).

The Dagster dbt assets call :func:`dbt_args` on their resource; benchmarks and tests that want a warehouse
without orchestration call :func:`run_dbt` / :func:`build_warehouse` (the same project, the same arguments).
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import sys
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd
from dagster_dbt import DbtCliResource, DbtProject

from settings import DBT_PROJECT_DIR

log = logging.getLogger(__name__)

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)


def dbt_executable() -> str:
    """The ``dbt`` installed beside this interpreter (the project's virtualenv), else the one on PATH."""
    candidate = Path(sys.executable).with_name("dbt")
    return str(candidate) if candidate.exists() else "dbt"


def dbt_resource() -> DbtCliResource:
    return DbtCliResource(project_dir=str(DBT_PROJECT_DIR), profiles_dir=str(DBT_PROJECT_DIR),
                          dbt_executable=dbt_executable())


def dbt_args(command: Sequence[str], warehouse: str | Path, dbt_vars: Mapping | None = None) -> list[str]:
    """``command`` with ``--vars``: the warehouse file (read by ``profiles.yml``) and any project vars."""
    all_vars = {"warehouse_path": str(Path(warehouse).resolve()), **(dbt_vars or {})}
    return [*command, "--vars", json.dumps(all_vars, sort_keys=True)]


def prepare_manifest() -> Path:
    """Parse the project when any of its files is newer than ``target/manifest.json`` (the Dagster assets are
    defined from the manifest); returns the manifest's path."""
    manifest = dbt_project.manifest_path
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", DBT_PROJECT_DIR / "profiles.yml",
               *DBT_PROJECT_DIR.glob("models/**/*"), *DBT_PROJECT_DIR.glob("macros/**/*"),
               *DBT_PROJECT_DIR.glob("tests/**/*")]
    built = manifest.stat().st_mtime if manifest.exists() else 0.0
    if any(p.stat().st_mtime > built for p in sources if p.is_file()):
        log.info("parsing the dbt project (%s)", DBT_PROJECT_DIR)
        dbt_resource().cli(["parse", "--quiet"], target_path=manifest.parent).wait()
    return manifest


def run_dbt(warehouse: str | Path, command: Sequence[str], dbt_vars: Mapping | None = None) -> None:
    """``dbt <command>`` on ``warehouse`` outside Dagster (scratch target folder); raises with dbt's error
    messages when it fails."""
    with tempfile.TemporaryDirectory(prefix="dbt_") as scratch:
        invocation = dbt_resource().cli(dbt_args(command, warehouse, dbt_vars), raise_on_error=False,
                                        target_path=Path(scratch))
        echoed = io.StringIO()  # dagster-dbt echoes every dbt event (and any line dbt prints) to stdout
        with contextlib.redirect_stdout(echoed):
            events = [e.raw_event.get("info", {}) for e in invocation.stream_raw_events()]
        if not invocation.is_successful():
            errors = [e.get("msg", "") for e in events if e.get("level") == "error"]
            raise RuntimeError(f"dbt {' '.join(command)} failed:\n"
                               + "\n".join(errors[-40:] or echoed.getvalue().splitlines()[-40:]))


def build_warehouse(raw_dir: str | Path, warehouse: str | Path, dbt_vars: Mapping | None = None) -> None:
    """Ingest ``raw_dir`` into ``warehouse`` (loaded into the side schema, validated by the Great Expectations
    suites, then promoted, as the platform does) and build every dbt model and test except the forecast marts
    (which need the models' ``ml`` tables); ``dbt_vars`` override the project's vars (e.g.
    :meth:`forecasting.folds.ForecastSpec.dbt_vars`)."""
    from expectations import failure_report, validate_incoming
    from ingestion.load import RawInputError, discard_incoming, load_incoming, promote_incoming

    Path(warehouse).parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(warehouse)) as con:
        load_incoming(con, Path(raw_dir))
    report = failure_report(validate_incoming(warehouse))
    with duckdb.connect(str(warehouse)) as con:
        if report:
            discard_incoming(con)
            raise RawInputError(f"{raw_dir} failed validation; nothing was replaced:\n{report}")
        promote_incoming(con)
    run_dbt(warehouse, ["build", "--exclude", "tag:forecast"], dbt_vars)


def load_history_as_raw_sales(history: pd.DataFrame, warehouse: str | Path) -> None:
    """Write history rows (the feature mart's columns; plan rows ignored) to ``raw.sales`` of ``warehouse`` in the
    Kaggle layout, replacing it, so dbt can build their lineage (e.g. the store statistics of a generated sample:
    ``run_dbt(warehouse, ["run", "--select", "+agg_store_sales_stats"])``)."""
    hist = history.loc[history["is_history"]] if "is_history" in history.columns else history
    sales = pd.DataFrame({
        "Store": hist["store_id"].astype("int64").to_numpy(),
        "DayOfWeek": pd.to_datetime(hist["sale_date"]).dt.dayofweek.to_numpy() + 1,
        "Date": pd.to_datetime(hist["sale_date"]).dt.date.to_numpy(),
        "Sales": hist["sales"].fillna(0).astype("int64").to_numpy(),
        "Customers": hist["customers"].fillna(0).astype("int64").to_numpy(),
        "Open": hist["is_open"].astype(bool).astype("int64").to_numpy(),
        "Promo": hist["is_promo"].astype(bool).astype("int64").to_numpy(),
        "StateHoliday": hist["state_holiday"].astype(str).to_numpy() if "state_holiday" in hist else "0",
        "SchoolHoliday": hist["is_school_holiday"].astype(bool).astype("int64").to_numpy()
        if "is_school_holiday" in hist else 0,
    })
    con = duckdb.connect(str(warehouse))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        con.register("history_rows", sales)
        con.execute("CREATE OR REPLACE TABLE raw.sales AS SELECT * FROM history_rows")
        con.unregister("history_rows")
    finally:
        con.close()
