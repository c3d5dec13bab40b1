"""Accuracy benchmark: rolling-origin backtests of every model on a Rossmann-layout data folder.

A benchmark, not a test (pytest does not collect it).  It uses the project's own path:

1. ``--raw-dir DIR``: the files are loaded with :mod:`ingestion.load` into a scratch DuckDB warehouse
   and ``dbt build`` (the platform's models and tests, without the forecast marts) builds the feature mart.
   ``--warehouse PATH`` reuses a warehouse that already has ``marts.fct_store_daily_features``.
2. Every model runs :func:`forecasting.runner.train` -- the same code the Dagster assets run:
   the backtest folds (``backtest_1`` .. and ``validation`` = the last 42 days of history), the refit on all
   history and the plan forecast -- in its own child process, so its peak memory (max RSS) is its own.
3. The blend is fitted on the members' fold predictions (weights per fold from the other folds).
4. Prints per model: RMSPE per fold and their mean, RMSE, MAE, MAPE, 80% interval coverage per fold
   (validation fold shown), fit seconds (all folds + the final refit), predict seconds, peak memory,
   and writes everything to ``bench/results/accuracy-<UTC time>.json``.

    .venv/bin/python bench/accuracy.py --raw-dir /work/shared/data/rossmann
    .venv/bin/python bench/accuracy.py --warehouse data/warehouse.duckdb --models baseline random_forest
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from forecasting.folds import ForecastSpec  # noqa: E402  (after the sys.path line above)
from forecasting.protocol import MODEL_NAMES, REGISTRY  # noqa: E402

ALL_MODELS = MODEL_NAMES  # the pipeline's models; --models may name any registered one


def build_warehouse(raw_dir: Path, warehouse: Path, folds: int) -> float:
    """Ingest + dbt build into ``warehouse`` (the platform's path without Dagster); returns seconds."""
    from warehouse.dbt import build_warehouse as build

    t = time.perf_counter()
    build(raw_dir, warehouse, ForecastSpec(n_folds=folds).dbt_vars())
    return time.perf_counter() - t


def worker(args) -> None:
    """One model in this process: forecasting.runner.train on the warehouse's mart; a JSON summary to --result."""
    import duckdb
    import pandas as pd

    from forecasting.artifacts import save_result
    from forecasting.features import load_feature_frame, load_store_stats_table
    from forecasting.protocol import create
    from forecasting.runner import train
    from settings import configure_logging

    configure_logging()
    t = time.perf_counter()
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        frame, store_stats = load_feature_frame(con), load_store_stats_table(con)
    load_s = time.perf_counter() - t
    spec = ForecastSpec(n_folds=args.folds, store_correction=not args.no_store_correction)
    tm = train(create(args.worker, profile=args.profile), frame, store_stats, spec)
    save_result(tm, args.models_dir)
    m = tm.metrics
    folds, timings = tm.meta["folds"], tm.meta["timings_s"]
    out = {
        "model": args.worker,
        "model_version": tm.model_version,
        "artifact_path": tm.registry["artifact_path"],
        "metrics": m.pivot(index="split", columns="metric", values="value").to_dict(orient="index"),
        "split_order": list(dict.fromkeys(m["split"])),
        "store_correction_effect": tm.meta["store_correction_effect"],
        "fold_timings": {f["split"]: {"fit_s": f["fit_s"], "predict_s": f["predict_s"]} for f in folds},
        "fit_s": timings["fit_backtests"] + timings["fit_full"],
        "predict_s": sum(f["predict_s"] for f in folds) + timings["predict_plan"],
        "total_s": timings["total"],
        "load_s": load_s,
        "peak_rss_gib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
        # CPU seconds of this process (user + system, all threads): less sensitive than wall time to other load
        "cpu_s": resource.getrusage(resource.RUSAGE_SELF).ru_utime + resource.getrusage(resource.RUSAGE_SELF).ru_stime,
        "loadavg_end": os.getloadavg(),
        "registry": {k: str(v) for k, v in tm.registry.items() if k != "params"},
    }
    pd.DataFrame(tm.forecast).to_parquet(Path(args.result).with_suffix(".forecast.parquet"), index=False)
    Path(args.result).write_text(json.dumps(out, indent=2, default=str))


def _fmt(v, nd=4):
    return "   n/a" if v is None or v != v else f"{v:.{nd}f}"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--raw-dir", type=Path, help="folder with train.csv[.gz], store.csv[, test.csv]")
    ap.add_argument("--warehouse", type=Path, help="reuse this warehouse (built if missing and --raw-dir given)")
    ap.add_argument("--work-dir", type=Path, help="scratch folder (default: a new temporary folder)")
    ap.add_argument("--models", nargs="+", default=list(ALL_MODELS), choices=list(REGISTRY))
    ap.add_argument("--folds", type=int, default=3, help="number of folds incl. validation (default 3)")
    ap.add_argument("--profile", choices=["default", "fast"], default="default")
    ap.add_argument("--no-blend", action="store_true")
    ap.add_argument("--no-store-correction", action="store_true",
                    help="leave the forecasts uncorrected (forecasting.correction)")
    ap.add_argument("--out", type=Path, help="JSON result file (default bench/results/accuracy-<time>.json)")
    ap.add_argument("--worker", help=argparse.SUPPRESS)
    ap.add_argument("--models-dir", help=argparse.SUPPRESS)
    ap.add_argument("--result", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.worker:
        worker(args)
        return 0
    if not args.raw_dir and not args.warehouse:
        ap.error("give --raw-dir or --warehouse")

    t_all = time.perf_counter()
    work = args.work_dir or Path(tempfile.mkdtemp(prefix="accuracy_"))
    work.mkdir(parents=True, exist_ok=True)
    warehouse = args.warehouse or work / "warehouse.duckdb"
    build_s = None
    if not warehouse.exists():
        if not args.raw_dir:
            ap.error(f"{warehouse} does not exist and no --raw-dir to build it from")
        print(f"building {warehouse} from {args.raw_dir} (ingest + dbt build) ...", flush=True)
        build_s = build_warehouse(args.raw_dir, warehouse, args.folds)
        print(f"  built in {build_s:.0f}s", flush=True)
    results = {}
    for model in args.models:
        res = work / f"{model}.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", model, "--warehouse", str(warehouse),
               "--models-dir", str(work / "models"), "--result", str(res), "--folds", str(args.folds),
               "--profile", args.profile] + (["--no-store-correction"] if args.no_store_correction else [])
        print(f"== {model}", flush=True)
        t = time.perf_counter()
        subprocess.run(cmd, check=True, env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"})
        results[model] = json.loads(res.read_text())
        results[model]["wall_s"] = time.perf_counter() - t

    if not args.no_blend and len(results) > 1:
        import pandas as pd

        from forecasting.blend import fit_blend

        t = time.perf_counter()
        members = {
            n: {"backtest": pd.read_parquet(Path(r["artifact_path"]) / "backtest.parquet"),
                "forecast": pd.read_parquet(res.with_name(f"{n}.forecast.parquet")),
                "registry": {**r["registry"], "n_train_rows": int(r["registry"]["n_train_rows"]),
                             "train_start": r["registry"]["train_start"], "train_end": r["registry"]["train_end"]}}
            for n, r in results.items()
        }
        bl = fit_blend(members, ForecastSpec(n_folds=args.folds))
        m = bl.metrics
        results["blend"] = {
            "model": "blend", "metrics": m.pivot(index="split", columns="metric", values="value").to_dict(orient="index"),
            "split_order": list(dict.fromkeys(m["split"])), "weights": bl.forecaster.params["weights"],
            "fit_s": time.perf_counter() - t, "predict_s": 0.0, "peak_rss_gib": None,
        }

    splits = next(iter(results.values()))["split_order"]
    print()
    print(f"data: {args.raw_dir or warehouse}; folds: {', '.join(splits)}; load average now "
          f"{' '.join(f'{x:.1f}' for x in os.getloadavg())}; {os.cpu_count()} CPUs")
    head = (f"{'model':<24}" + "".join(f"{s:>12}" for s in splits) + f"{'mean':>9}{'rmse':>9}{'mae':>8}{'mape':>8}"
            f"{'cov80':>7}{'cov80 mean':>11}{'fit s':>8}{'pred s':>8}{'cpu s':>7}{'peak GiB':>9}")
    print(head)
    print("-" * len(head))
    for name, r in results.items():
        met = r["metrics"]
        rms = [met[s]["rmspe"] for s in splits]
        v = met["validation"]
        covs = [met[s].get("coverage_80") for s in splits]
        r["mean_rmspe"] = sum(rms) / len(rms)
        r["mean_coverage_80"] = sum(covs) / len(covs)
        print(f"{name:<24}" + "".join(f"{_fmt(x):>12}" for x in rms) + f"{_fmt(r['mean_rmspe']):>9}"
              f"{v['rmse']:>9.0f}{v['mae']:>8.0f}{_fmt(v['mape'], 3):>8}{_fmt(v.get('coverage_80'), 3):>7}"
              f"{_fmt(r['mean_coverage_80'], 3):>11}{r['fit_s']:>8.0f}{r['predict_s']:>8.1f}"
              f"{(r.get('cpu_s') or float('nan')):>7.0f}"
              f"{(r['peak_rss_gib'] or float('nan')):>9.2f}")
    fold_weights = ForecastSpec(n_folds=args.folds).recency_weights(splits)
    for r in results.values():
        r["weighted_rmspe"] = (sum(fold_weights[s] * r["metrics"][s]["rmspe"] for s in splits)
                               / sum(fold_weights.values()))
    champ = min(results, key=lambda n: results[n]["weighted_rmspe"])
    total = time.perf_counter() - t_all
    train_s = sum(r.get("wall_s", 0.0) for r in results.values())
    print(f"\nchampion (lowest recency-weighted RMSPE, fold weights {fold_weights}): {champ}  "
          f"(weighted {results[champ]['weighted_rmspe']:.4f}, validation fold "
          f"{results[champ]['metrics']['validation']['rmspe']:.4f})")
    for name, r in results.items():
        for split, e in (r.get("store_correction_effect") or {}).items():
            print(f"store correction {name} {split}: slope {e['slope']:.2f}, rmspe {e['rmspe_uncorrected']:.4f} "
                  f"uncorrected -> {e['rmspe']:.4f}")
    if "blend" in results:
        print("blend weights (all folds): " + ", ".join(f"{k}={w:.3f}" for k, w in results["blend"]["weights"].items()))
    print(f"rmse/mae/mape/cov80: validation fold; cov80 mean: over all folds. Model processes: {train_s:.0f}s "
          f"(every model's folds + refit + plan forecast); whole benchmark {total:.0f}s"
          + (f" incl. warehouse build {build_s:.0f}s" if build_s else ""))
    out = args.out or REPO / "bench" / "results" / f"accuracy-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"data": str(args.raw_dir or warehouse), "splits": splits, "champion": champ,
                               "results": results, "train_s": train_s, "total_s": total, "build_s": build_s,
                               "cpus": os.cpu_count()}, indent=2, default=str))
    print(f"written {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
