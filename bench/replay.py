"""Replay benchmark: the daily operating loop on a data folder, week by week (a benchmark, not a test).

1. Writes an input folder with the history up to ``--cut`` (``train.csv``), ``store.csv`` and a plan
   (``test.csv``: the next 42 days' known calendar, taken from the data's own later rows).
2. Runs the pipeline (``python -m orchestration.run``: the ``forecast_pipeline`` job the sensor launches) once.
3. Then ``--steps`` times: writes the following week as ``train_<first day>.csv`` and a new plan, lets the
   sensor evaluate the folder (it must request a run), runs the job, and prints per step: each model's decision
   (refit or forecast-only) and why, wall time, peak memory (max RSS of the run's process), the champion's
   realised RMSPE and interval coverage on the new week of the previous step's forecast -- computed in Python from
   the rows of ``marts.fct_forecast_vs_actual`` and, to check, in SQL over the same mart --, the checks that failed
   and the alerts written.

``--shift STORE_TYPE:FACTOR:DATE`` multiplies that store type's Sales from DATE on, in every file written, to
show the drift and degradation checks fire and a refit follow.

    .venv/bin/python bench/replay.py --raw-dir ../shared/data/rossmann --cut 2015-04-30 --steps 6
    .venv/bin/python bench/replay.py --raw-dir ../shared/data/rossmann --cut 2015-04-30 --steps 6 --shift c:0.6:2015-05-14
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb
import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from warehouse.catalog import relation_exists  # noqa: E402

HORIZON_DAYS = 42
TRAIN_COLUMNS = "Store, DayOfWeek, Date, Sales, Customers, Open, Promo, StateHoliday, SchoolHoliday"
PLAN_COLUMNS = "Store, DayOfWeek, Date, Open, Promo, StateHoliday, SchoolHoliday"


def _source(raw_dir: Path) -> str:
    path = next(p for p in (raw_dir / "train.csv", raw_dir / "train.csv.gz") if p.exists())
    return f"read_csv('{path.as_posix()}', header=true, types={{'StateHoliday': 'VARCHAR'}}, dateformat='%Y-%m-%d')"


def _sales_sql(raw_dir: Path, shift: tuple[str, float, date] | None) -> str:
    """Every row of the source history, with the shift applied."""
    if shift is None:
        return f"SELECT {TRAIN_COLUMNS} FROM {_source(raw_dir)}"
    store_type, factor, since = shift
    return (f"SELECT t.* REPLACE (CASE WHEN s.StoreType = '{store_type}' AND t.Date >= DATE '{since}' "
            f"THEN CAST(round(t.Sales * {factor}) AS INTEGER) ELSE t.Sales END AS Sales) "
            f"FROM (SELECT {TRAIN_COLUMNS} FROM {_source(raw_dir)}) t "
            f"JOIN read_csv('{(raw_dir / 'store.csv').as_posix()}', header=true) s USING (Store)")


def write_files(con: duckdb.DuckDBPyConnection, sales_sql: str, input_dir: Path, first: date | None, last: date,
                name: str) -> int:
    """The history ``first``..``last`` as ``name`` and the plan of the 42 days after ``last`` as test.csv."""
    where = f"Date <= DATE '{last}'" + (f" AND Date >= DATE '{first}'" if first else "")
    n = con.execute(f"SELECT count(*) FROM ({sales_sql}) WHERE {where}").fetchone()[0]
    con.execute(f"COPY (SELECT * FROM ({sales_sql}) WHERE {where} ORDER BY Date, Store) "
                f"TO '{(input_dir / name).as_posix()}' (HEADER, DATEFORMAT '%Y-%m-%d')")
    plan_end = last + timedelta(days=HORIZON_DAYS)
    con.execute(f"COPY (SELECT row_number() OVER (ORDER BY Date, Store) AS Id, {PLAN_COLUMNS} FROM ({sales_sql}) "
                f"WHERE Date > DATE '{last}' AND Date <= DATE '{plan_end}' ORDER BY Date, Store) "
                f"TO '{(input_dir / 'test.csv').as_posix()}' (HEADER, DATEFORMAT '%Y-%m-%d')")
    return n


def run_pipeline(env: dict) -> tuple[int, float, float, str]:
    """``python -m orchestration.run`` in a child process: exit code, seconds, peak RSS (GiB) and its output tail."""
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "orchestration.run"], cwd=REPO, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    return proc.returncode, time.perf_counter() - started, usage.ru_maxrss / 2**20, output[-3000:]


def sensor_requests(env: dict) -> int:
    """How many runs the raw-files sensor requests on the folder now (evaluated in a child with the run's env)."""
    code = ("from dagster import DagsterInstance, build_sensor_context\n"
            "from orchestration.automation import raw_files_sensor\n"
            "from orchestration.resources import PlatformPaths\n"
            "with DagsterInstance.get() as instance:\n"
            "    context = build_sensor_context(instance=instance, resources={'paths': PlatformPaths()})\n"
            "    result = raw_files_sensor.evaluate_tick(context)\n"
            "print(len(result.run_requests or []))\n")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True)
    return int(out.stdout.strip().splitlines()[-1]) if out.returncode == 0 and out.stdout.strip() else -1


def realised(warehouse: Path, origin: date, first: date, last: date) -> dict:
    """The champion's forecast of ``origin`` scored on ``first``..``last``: RMSPE and coverage from the mart's rows
    (numpy) and RMSPE by SQL, which must agree."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        # the champion model's forecast of that origin (a refit in this step made a new version: score the old one)
        champion = con.execute("SELECT model, max(model_version) FROM marts.fct_forecast_vs_actual "
                               "WHERE origin_date = ? AND model = (SELECT model FROM marts.dim_model_versions "
                               "WHERE is_champion) GROUP BY model", [origin]).fetchone()
        rows = con.execute("""
            SELECT f.model, f.actual_sales, f.sales_pred, f.sales_lower, f.sales_upper
            FROM marts.fct_forecast_vs_actual f
            WHERE f.model = ? AND f.model_version = ? AND f.origin_date = ? AND f.forecast_date BETWEEN ? AND ?
              AND f.is_open AND f.actual_sales > 0""", [*champion, origin, first, last]).fetchnumpy()
        by_sql = con.execute("""
            SELECT sqrt(avg(abs_pct_error ^ 2)) FROM marts.fct_forecast_vs_actual f
            WHERE f.model = ? AND f.model_version = ? AND f.origin_date = ? AND f.forecast_date BETWEEN ? AND ?
              AND abs_pct_error IS NOT NULL""", [*champion, origin, first, last]).fetchone()[0]
    actual, pred = rows["actual_sales"].astype(float), rows["sales_pred"].astype(float)
    if not len(actual):
        return {"champion": champion, "n": 0}
    inside = (actual >= rows["sales_lower"]) & (actual <= rows["sales_upper"])
    return {"champion": champion, "n": int(len(actual)),
            "rmspe": float(np.sqrt(np.mean(((actual - pred) / actual) ** 2))), "rmspe_sql": float(by_sql),
            "coverage": float(inside.mean())}


def step_report(warehouse: Path, run_id: str) -> dict:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        decisions = con.execute("SELECT model, decision, reason FROM ml.training_decisions WHERE run_id = ? "
                                "ORDER BY model", [run_id]).fetchall()
        failed = con.execute("SELECT check_name, severity, value, threshold FROM ml.monitoring_checks "
                             "WHERE run_id = ? AND NOT passed ORDER BY 1", [run_id]).fetchall() \
            if relation_exists(con, "ml", "monitoring_checks") else []
        history_end = con.execute("SELECT max(sale_date) FROM marts.fct_store_daily_features "
                                  "WHERE is_history").fetchone()[0]
    return {"decisions": decisions, "checks_failed": failed, "history_end": history_end}


def _last_run_id(warehouse: Path) -> str:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute("SELECT run_id FROM ml.training_decisions ORDER BY created_at DESC LIMIT 1").fetchone()[0]


def _alerts(data_dir: Path) -> int:
    path = data_dir / "alerts.jsonl"
    return len(path.read_text().splitlines()) if path.exists() else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--raw-dir", type=Path, required=True)
    parser.add_argument("--cut", type=date.fromisoformat, required=True, help="last history day of the first run")
    parser.add_argument("--steps", type=int, default=6, help="weekly steps after the first run")
    parser.add_argument("--shift", help="STORE_TYPE:FACTOR:DATE, e.g. c:0.6:2015-05-14")
    parser.add_argument("--work", type=Path, default=REPO / "data" / "replay")
    parser.add_argument("--profile", default="default", help="TRAINING_PROFILE of the runs")
    args = parser.parse_args()
    shift = None
    if args.shift:
        store_type, factor, since = args.shift.split(":")
        shift = (store_type, float(factor), date.fromisoformat(since))

    shutil.rmtree(args.work, ignore_errors=True)
    input_dir, data_dir = args.work / "input", args.work / "data"
    input_dir.mkdir(parents=True)
    shutil.copy(args.raw_dir / "store.csv", input_dir / "store.csv")
    env = {**os.environ, "PYTHONPATH": str(REPO), "DATA_DIR": str(data_dir), "RAW_DATA_DIR": str(input_dir),
           "DAGSTER_HOME": str(data_dir / "dagster_home"), "TRAINING_PROFILE": args.profile, "LOG_LEVEL": "INFO"}
    (data_dir / "dagster_home").mkdir(parents=True)
    (data_dir / "dagster_home" / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    warehouse = data_dir / "warehouse.duckdb"
    con = duckdb.connect()
    sales_sql = _sales_sql(args.raw_dir, shift)

    rows = write_files(con, sales_sql, input_dir, None, args.cut, "train.csv")
    print(f"step 0: history ..{args.cut} ({rows:,} rows){' shift ' + args.shift if shift else ''}", flush=True)
    results = []
    for step in range(args.steps + 1):
        first = args.cut + timedelta(days=7 * (step - 1) + 1)
        last = args.cut + timedelta(days=7 * step)
        if step:
            n = write_files(con, sales_sql, input_dir, first, last, f"train_{first:%Y%m%d}.csv")
            requested = sensor_requests(env)
            print(f"step {step}: train_{first:%Y%m%d}.csv ({n:,} rows, {first}..{last}); sensor requested "
                  f"{requested} run(s)", flush=True)
        alerts_before = _alerts(data_dir)
        code, seconds, peak_gib, output = run_pipeline(env)
        if code != 0:
            print(f"step {step}: the run FAILED after {seconds:.0f}s\n{output}")
            return 1
        report = step_report(warehouse, _last_run_id(warehouse))
        score = realised(warehouse, first, first, last) if step else {}
        line = {"step": step, "history_end": str(report["history_end"]), "seconds": round(seconds, 1),
                "peak_gib": round(peak_gib, 2), "decisions": report["decisions"],
                "checks_failed": report["checks_failed"], "alerts": _alerts(data_dir) - alerts_before, **score}
        results.append(line)
        decided = "; ".join(f"{m} {d} ({r})" for m, d, r in report["decisions"])
        scored = (f"champion {score['champion'][0]} realised RMSPE {score['rmspe']:.4f} (SQL {score['rmspe_sql']:.4f}),"
                  f" coverage {score['coverage']:.3f} on {score['n']} open days" if score.get("n") else "")
        print(f"step {step}: {seconds:.0f}s, peak {peak_gib:.2f} GiB; {scored}\n  decisions: {decided}\n"
              f"  checks failed: {report['checks_failed'] or 'none'}; alerts written: {line['alerts']}", flush=True)
    out = REPO / "bench" / "results" / f"replay-{time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2, default=str))
    print(f"results: {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
