"""Parameter trials for one model on chosen backtest folds of a built warehouse (a benchmark, not a test).

Each trial fits the model with ``DEFAULT_PARAMS`` overridden by the trial's parameters on the training part of
each chosen fold -- with the dbt store statistics of that fold's cut, as the platform does -- and prints the
fold's RMSPE and the fit + predict seconds.  Tune on the earlier folds (``backtest_*``) and keep ``validation``
for the final, untouched comparison.

    .venv/bin/python bench/tune.py --warehouse /tmp/real.duckdb --model random_forest \\
        --folds backtest_2 --trial '{"max_features": 0.3}' --trial '{"max_features": 0.7}'

With ``--raw-dir DIR`` a missing ``--warehouse`` is built first (ingest + dbt build).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--warehouse", type=Path, required=True, help="DuckDB file with the marts built")
    ap.add_argument("--raw-dir", type=Path, help="build --warehouse from this data folder when it is missing")
    ap.add_argument("--model", required=True)
    ap.add_argument("--folds", default="backtest_2", help="comma-separated fold names (default backtest_2)")
    ap.add_argument("--trial", action="append", default=[], help="JSON object of parameter overrides (repeatable); "
                                                                  "none: the defaults")
    args = ap.parse_args(argv)

    from forecasting.folds import fold_frames, make_folds
    from forecasting.metrics import rmspe
    from forecasting.features import StoreStats, history_rows, load_feature_frame, load_store_stats_table
    import duckdb

    from forecasting.protocol import create
    from warehouse.dbt import build_warehouse

    if not args.warehouse.exists():
        if not args.raw_dir:
            ap.error(f"{args.warehouse} does not exist; give --raw-dir to build it")
        build_warehouse(args.raw_dir, args.warehouse)
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        hist, table = history_rows(load_feature_frame(con)), load_store_stats_table(con)
    wanted = args.folds.split(",")
    folds = [f for f in make_folds(hist) if f.split in wanted]
    if not folds:
        ap.error(f"none of the folds {wanted} exists")
    for trial in args.trial or ["{}"]:
        scores = []
        for fold in folds:
            train, target = fold_frames(hist, fold)
            t = time.perf_counter()
            fitted = create(args.model, json.loads(trial)).fit(train, StoreStats.from_table(table, fold.start))
            pred = fitted.predict(train, target)
            score = rmspe(target["sales"], pred["sales_pred"], target["is_open"])
            scores.append(f"{fold.split} rmspe={score:.4f} ({time.perf_counter() - t:.0f}s)")
        print(f"{args.model} {trial}: {'; '.join(scores)}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
