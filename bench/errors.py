"""Error analysis benchmark (issue 14): where the models' backtest error is, and which way it leans.

A benchmark, not a test (pytest does not collect it).  It reads a warehouse a pipeline run wrote: every model's
latest version's fold rows (``ml.backtest_forecast``; with ``--artifacts`` the ``backtest.parquet`` files of an
accuracy run's models folder instead) joined with the store-day attributes of ``marts.fct_store_daily_features``
and ``marts.dim_stores``, and computes in DuckDB, per fold and model:

- RMSPE, Kaggle's, over open days with actual sales > 0 (``forecasting.metrics.rmspe``: a NULL ``is_open``
  counts as open);
- bias = mean log(forecast / actual) over the same days (> 0: the model forecasts too much);
- the share of the fold's squared percentage error a group carries (of the champion, or of each model in JSON);

grouped by fold x model, then per fold by store type, assortment, weekday, horizon week, promo, state-holiday
proximity, school holiday, closures (reopening after >= 3 closed days, refurbishment, the days before a long
closure), stores with a gap in their history, the worst stores and days of the champion; and whether a store's
bias carries over from one fold to the next (with the RMSPE a store correction fitted on the earlier fold would
give).  Prints markdown tables and writes them as JSON (``bench/results/errors-<UTC time>.json`` unless ``--out``).

    .venv/bin/python bench/errors.py --warehouse bench/results/real-warehouse.duckdb
    .venv/bin/python bench/errors.py --warehouse W --artifacts ACCURACY_WORK_DIR/models --models random_forest lstm
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from pathlib import Path

import duckdb
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from warehouse.catalog import relation_exists  # noqa: E402
from warehouse.writeback import FOLD_ROW_NAMES  # noqa: E402

# Group label per store-day, as SQL over the scored rows (alias-free: the columns of ``scored``).
# Holiday and closure buckets read the mart's distance features (capped at 14 and 30 days there).
DIMENSIONS: dict[str, str] = {
    "store type": "store_type",
    "assortment": "assortment",
    "weekday": "day_of_week::VARCHAR",
    "horizon week": "((horizon_day - 1) // 7 + 1)::VARCHAR",
    "promo": "CASE WHEN is_promo THEN 'promo' ELSE 'no promo' END",
    "state holiday": """CASE
        WHEN days_since_state_holiday = 0 THEN '0: on a state holiday'
        WHEN days_until_state_holiday BETWEEN 1 AND 3 THEN '1: 1-3 days before'
        WHEN days_since_state_holiday BETWEEN 1 AND 3 THEN '2: 1-3 days after'
        WHEN least(days_until_state_holiday, days_since_state_holiday) <= 7 THEN '3: 4-7 days before or after'
        ELSE '4: none within 7 days' END""",
    "school holiday": "CASE WHEN is_school_holiday THEN 'school holiday' ELSE 'no school holiday' END",
    "closure": """CASE
        WHEN is_after_refurbishment THEN '0: within 30 days after a refurbishment (>= 30 days closed)'
        WHEN days_since_reopening < 7 THEN '1: first week after >= 3 days closed'
        WHEN days_since_reopening < 30 THEN '2: days 7-29 after >= 3 days closed'
        WHEN days_until_long_closure BETWEEN 1 AND 7 THEN '3: week before >= 3 days closed'
        ELSE '4: none near' END""",
    "history gap": "CASE WHEN n_missing_days > 0 THEN 'store with missing days' ELSE 'complete history' END",
}
WORST_DAYS = 8
# how much of the earlier fold's store bias the carry-over trial removes (1 = all of it: noisier)
STORE_BIAS_SHRINK = 0.5


def load_fold_rows(con: duckdb.DuckDBPyConnection, models: list[str] | None = None,
                   artifacts: Path | None = None) -> list[str]:
    """Temp table ``scored``: the rows RMSPE counts (open, actual > 0) of each model's latest version, per fold,
    with their error terms and store-day attributes; temp table ``folds``: the folds oldest first.  Returns the
    models found (those of ``models`` when given)."""
    if artifacts is not None:
        # an accuracy run's artifacts: <models dir>/<model>/<version>/backtest.parquet in the runner's names
        renamed = ", ".join(f"{old} AS {new}" for old, new in FOLD_ROW_NAMES.items())
        con.execute(f"""
            CREATE OR REPLACE TEMP VIEW backtest AS
            SELECT * EXCLUDE ({', '.join(FOLD_ROW_NAMES)}, horizon_day, filename), {renamed},
                   horizon_day + 1 AS horizon_day,
                   split_part(filename, '/', -3) AS model, split_part(filename, '/', -2) AS model_version,
                   split_part(filename, '/', -2) AS trained_at
            FROM read_parquet('{Path(artifacts).resolve()}/*/*/backtest.parquet', filename = true)""")
    else:
        con.execute("""
            CREATE OR REPLACE TEMP VIEW backtest AS
            SELECT b.*, r.trained_at FROM ml.backtest_forecast AS b
            JOIN ml.model_registry AS r USING (model, model_version)""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE versions AS
        SELECT DISTINCT model, model_version, trained_at FROM backtest
        WHERE $models IS NULL OR list_contains($models, model)
        QUALIFY row_number() OVER (PARTITION BY model ORDER BY trained_at DESC, model_version DESC) = 1""",
                {"models": models})
    con.execute("""
        CREATE OR REPLACE TEMP TABLE scored AS
        SELECT
            b.model, b.split, b.store_id, b.forecast_date, b.horizon_day, b.sales_pred, b.actual_sales,
            power((b.actual_sales - b.sales_pred) / b.actual_sales, 2) AS sq_pct_error,
            -- forecasts are clipped at 0: a zero forecast of an open day counts as 1 (its log ratio stays finite)
            ln(greatest(b.sales_pred, 1) / b.actual_sales) AS log_ratio,
            f.store_type, f.assortment, f.day_of_week, f.is_promo, f.is_school_holiday,
            f.days_since_state_holiday, f.days_until_state_holiday,
            f.days_since_reopening, f.days_until_long_closure, f.is_after_refurbishment,
            s.n_missing_days
        FROM backtest AS b
        JOIN versions USING (model, model_version)
        JOIN marts.fct_store_daily_features AS f ON f.store_id = b.store_id AND f.sale_date = b.forecast_date
        JOIN marts.dim_stores AS s ON s.store_id = b.store_id
        -- forecasting.metrics.rmspe's rows: open (NULL counts as open) with an actual > 0
        WHERE coalesce(b.is_open, true) AND b.actual_sales > 0""")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE folds AS
        SELECT split, min(forecast_date)::DATE::VARCHAR AS first_day, max(forecast_date)::DATE::VARCHAR AS last_day,
               row_number() OVER (ORDER BY min(forecast_date)) AS fold_index
        FROM scored GROUP BY split""")
    return [m for (m,) in con.execute("SELECT DISTINCT model FROM scored ORDER BY model").fetchall()]


def fold_scores(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """RMSPE and bias per fold and model (folds oldest first)."""
    return con.execute("""
        SELECT fold_index, split, first_day, last_day, model, count(*) AS n_days,
               sqrt(avg(sq_pct_error)) AS rmspe, avg(log_ratio) AS bias
        FROM scored JOIN folds USING (split)
        GROUP BY ALL ORDER BY fold_index, model""").df()


def champion_model(con: duckdb.DuckDBPyConnection, models: list[str]) -> str:
    """The champion of ``marts.dim_model_versions`` when the warehouse has it and it is among ``models``; else the
    model with the lowest mean RMSPE over the folds (the rule the platform had until issue 14)."""
    if relation_exists(con, "marts", "dim_model_versions"):
        row = con.execute("SELECT model FROM marts.dim_model_versions WHERE is_champion").fetchone()
        if row and row[0] in models:
            return row[0]
    scores = fold_scores(con)
    return str(scores.groupby("model")["rmspe"].mean().idxmin())


def group_scores(con: duckdb.DuckDBPyConnection, dimension_sql: str) -> pd.DataFrame:
    """Per fold, group and model: open days, RMSPE, bias and the group's share of the fold's squared error."""
    return con.execute(f"""
        WITH grouped AS (
            SELECT split, {dimension_sql} AS grp, model, count(*) AS n_days, sum(sq_pct_error) AS sq_error,
                   sqrt(avg(sq_pct_error)) AS rmspe, avg(log_ratio) AS bias
            FROM scored GROUP BY ALL
        )
        SELECT fold_index, split, grp, model, n_days, rmspe, bias,
               sq_error / sum(sq_error) OVER (PARTITION BY split, model) AS sq_error_share
        FROM grouped JOIN folds USING (split)
        ORDER BY fold_index, grp, model""").df()


def worst_stores(con: duckdb.DuckDBPyConnection, champion: str, n: int) -> pd.DataFrame:
    """Per fold, the ``n`` stores with the champion's highest RMSPE, their share of its squared error, and every
    model's RMSPE and bias on them."""
    return con.execute("""
        WITH per_store AS (
            SELECT split, store_id, model, any_value(store_type) AS store_type, count(*) AS n_days,
                   sum(sq_pct_error) AS sq_error, sqrt(avg(sq_pct_error)) AS rmspe, avg(log_ratio) AS bias,
                   any_value(n_missing_days) AS n_missing_days
            FROM scored GROUP BY ALL
        ), shares AS (
            SELECT *, sq_error / sum(sq_error) OVER (PARTITION BY split, model) AS sq_error_share FROM per_store
        ), worst AS (
            SELECT split, store_id FROM shares WHERE model = $champion
            QUALIFY row_number() OVER (PARTITION BY split ORDER BY rmspe DESC, store_id) <= $n
        )
        SELECT fold_index, split, store_id, store_type, n_missing_days, model, n_days, rmspe, bias, sq_error_share
        FROM shares JOIN worst USING (split, store_id) JOIN folds USING (split)
        ORDER BY fold_index, store_id, model""", {"champion": champion, "n": n}).df()


def worst_days(con: duckdb.DuckDBPyConnection, champion: str, n: int) -> pd.DataFrame:
    """Per fold, the ``n`` days carrying the largest share of the champion's squared error (calendar events the
    features miss show up here), with every model's RMSPE and bias on them."""
    return con.execute("""
        WITH per_day AS (
            SELECT split, forecast_date::VARCHAR AS day, dayname(forecast_date) AS weekday, model, count(*) AS n_days,
                   sum(sq_pct_error) AS sq_error, sqrt(avg(sq_pct_error)) AS rmspe, avg(log_ratio) AS bias
            FROM scored GROUP BY ALL
        ), shares AS (
            SELECT *, sq_error / sum(sq_error) OVER (PARTITION BY split, model) AS sq_error_share FROM per_day
        ), worst AS (
            SELECT split, day FROM shares WHERE model = $champion
            QUALIFY row_number() OVER (PARTITION BY split ORDER BY sq_error DESC, day) <= $n
        )
        SELECT fold_index, split, day, weekday, model, n_days, rmspe, bias, sq_error_share
        FROM shares JOIN worst USING (split, day) JOIN folds USING (split)
        ORDER BY fold_index, day, model""", {"champion": champion, "n": n}).df()


def store_bias_persistence(con: duckdb.DuckDBPyConnection, shrink: float) -> pd.DataFrame:
    """Does a store's bias carry over to the next fold?  Per model and pair of consecutive folds: the correlation
    of the stores' bias, the later fold's RMSPE, and its RMSPE had each forecast been divided by
    exp(``shrink`` x the store's bias in the earlier fold) -- a correction fitted on the earlier fold only."""
    return con.execute("""
        WITH store_bias AS (
            SELECT model, fold_index, store_id, avg(log_ratio) AS bias
            FROM scored JOIN folds USING (split) GROUP BY ALL
        ), pairs AS (
            SELECT earlier.model, earlier.fold_index + 1 AS fold_index, earlier.store_id, earlier.bias AS earlier_bias,
                   later.bias AS later_bias
            FROM store_bias AS earlier JOIN store_bias AS later
                ON later.model = earlier.model AND later.store_id = earlier.store_id
                AND later.fold_index = earlier.fold_index + 1
        ), corrected AS (
            SELECT r.model, f.fold_index, r.sq_pct_error,
                   power((r.actual_sales - r.sales_pred * exp(-$shrink * coalesce(p.earlier_bias, 0)))
                         / r.actual_sales, 2) AS corrected_sq_pct_error
            FROM scored AS r JOIN folds AS f USING (split)
            LEFT JOIN pairs AS p USING (model, fold_index, store_id)
            WHERE f.fold_index > 1
        )
        SELECT (SELECT split FROM folds WHERE fold_index = c.fold_index - 1) || ' -> '
               || (SELECT split FROM folds WHERE fold_index = c.fold_index) AS folds,
               c.model, any_value(b.store_bias_corr) AS "store bias correlation",
               sqrt(avg(c.sq_pct_error)) AS "RMSPE later fold",
               sqrt(avg(c.corrected_sq_pct_error)) AS "RMSPE with the earlier fold's store bias removed"
        FROM corrected AS c
        JOIN (SELECT model, fold_index, corr(earlier_bias, later_bias) AS store_bias_corr FROM pairs GROUP BY ALL) AS b
            USING (model, fold_index)
        GROUP BY c.fold_index, c.model ORDER BY c.fold_index, c.model""", {"shrink": shrink}).df()


def _wide(long: pd.DataFrame, keys: list[str], models: list[str], champion: str) -> pd.DataFrame:
    """One row per ``keys``: open days, the champion's share of squared error, RMSPE and bias of each model."""
    wide = long.pivot_table(index=keys, columns="model", values=["rmspe", "bias"], sort=False)
    out = long.loc[long["model"] == champion].set_index(keys)[["n_days", "sq_error_share"]]
    out = out.rename(columns={"n_days": "open days", "sq_error_share": f"share of sq. error ({champion})"})
    for metric in ("rmspe", "bias"):
        for model in models:
            if (metric, model) in wide.columns:
                out[f"{metric.upper() if metric == 'rmspe' else metric} {model}"] = wide[(metric, model)]
    return out.reset_index()


def markdown(frame: pd.DataFrame) -> str:
    return frame.to_markdown(index=False, floatfmt=".4f")


def analyse(con: duckdb.DuckDBPyConnection, models: list[str] | None = None, artifacts: Path | None = None,
            worst: int = 15) -> dict:
    """Every table of the error analysis as frames (``tables``), with the models and the champion."""
    found = load_fold_rows(con, models, artifacts)
    if not found:
        raise SystemExit("no scored backtest rows (open days with sales > 0) for the models asked for")
    champion = champion_model(con, found)
    folds = fold_scores(con)
    overall = folds.pivot_table(index=["fold_index", "split", "first_day", "last_day"], columns="model",
                                values="rmspe", sort=False)
    overall.columns = [f"RMSPE {m}" for m in overall.columns]
    bias = folds.pivot_table(index="fold_index", columns="model", values="bias")
    bias.columns = [f"bias {m}" for m in bias.columns]
    tables = {"fold x model": overall.join(bias, on="fold_index").reset_index().drop(columns="fold_index")}
    for name, sql in DIMENSIONS.items():
        long = group_scores(con, sql)
        tables[name] = _wide(long, ["split", "grp"], found, champion).rename(columns={"grp": name})
    stores = worst_stores(con, champion, worst)
    tables[f"worst {worst} stores"] = _wide(stores, ["split", "store_id", "store_type", "n_missing_days"], found,
                                             champion)
    tables["worst days"] = _wide(worst_days(con, champion, WORST_DAYS), ["split", "day", "weekday"], found, champion)
    tables[f"store bias carried over (shrink {STORE_BIAS_SHRINK:g})"] = store_bias_persistence(con, STORE_BIAS_SHRINK)
    return {"models": found, "champion": champion, "tables": tables}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--warehouse", type=Path, required=True,
                    help="a warehouse a pipeline run (or bench/accuracy.py) built: marts and, without --artifacts, ml")
    ap.add_argument("--artifacts", type=Path,
                    help="read the fold rows from <this models folder>/<model>/<version>/backtest.parquet "
                         "(bench/accuracy.py's WORK_DIR/models) instead of ml.backtest_forecast")
    ap.add_argument("--models", nargs="+", help="models to analyse (default: every model with fold rows)")
    ap.add_argument("--worst", type=int, default=15, help="worst stores listed per fold (default 15)")
    ap.add_argument("--out", type=Path, help="JSON file (default bench/results/errors-<UTC time>.json)")
    args = ap.parse_args(argv)
    with duckdb.connect(str(args.warehouse), read_only=True) as con:
        result = analyse(con, args.models, args.artifacts, args.worst)
    print(f"warehouse {args.warehouse}; models {', '.join(result['models'])}; champion {result['champion']}. "
          "RMSPE over open days with sales > 0; bias = mean log(forecast / actual); shares of the champion's "
          "squared percentage error within each fold.")
    for name, table in result["tables"].items():
        print(f"\n### {name}\n\n{markdown(table)}")
    out = args.out or REPO / "bench" / "results" / f"errors-{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"warehouse": str(args.warehouse), "artifacts": str(args.artifacts or ""),
                               "models": result["models"], "champion": result["champion"],
                               "tables": {k: v.to_dict(orient="records") for k, v in result["tables"].items()}},
                              indent=2, default=str))
    print(f"\nwritten {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
