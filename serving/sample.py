"""A small, self-contained warehouse in the platform's layout, for the serving tests and the benchmark.

It holds what the readers use -- ``marts.dim_stores``, ``marts.fct_store_daily_features``,
``marts.agg_store_monthly``, ``ml.store_sales_forecast`` / ``model_metrics`` / ``model_registry`` (written
through :func:`warehouse.writeback.write_model_outputs`, so they follow the contract), optionally a
``marts.insight_*`` table -- and, optionally, a random forest artifact fitted with
:mod:`forecasting.models.random_forest` on the sample history. It is NOT the pipeline: the end-to-end tests
build the real warehouse with Dagster and dbt.

    python -m serving.sample --out data/sample/warehouse.duckdb --stores 1115 --no-model
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd

from warehouse.writeback import write_model_outputs
from serving.features import feature_rows_sql

MODELS = ("baseline", "random_forest", "lstm")
# Validation RMSPE of each model's versions, oldest first: the latest random forest is the champion.
RMSPE = {"baseline": [0.21, 0.20], "random_forest": [0.16, 0.12], "lstm": [0.18, 0.14]}


@dataclass
class SampleWarehouse:
    path: Path
    store_ids: list[int]
    history_end: pd.Timestamp
    horizon: tuple[pd.Timestamp, pd.Timestamp]
    versions: dict[str, list[str]] = field(default_factory=dict)  # model -> versions, oldest first
    artifact_dirs: dict[str, Path] = field(default_factory=dict)  # model_version -> artifact folder

    def latest(self, model: str) -> str:
        return self.versions[model][-1]


def _stores(n_stores: int, rng: np.random.Generator) -> pd.DataFrame:
    ids = np.arange(1, n_stores + 1)
    comp = rng.choice([np.nan, 250.0, 900.0, 3000.0, 12000.0], size=n_stores, p=[0.1, 0.3, 0.3, 0.2, 0.1])
    since_year = rng.choice([np.nan, 2008.0, 2012.0, 2014.0, 2015.0], size=n_stores)
    promo2 = ids % 2 == 0
    stores = pd.DataFrame({
        "store_id": ids.astype("int32"),
        "store_type": np.array(["a", "b", "c", "d"])[ids % 4],
        "assortment": np.array(["a", "c", "b"])[ids % 3],
        "competition_distance_m": comp,
        "competition_open_since_month": np.where(np.isnan(since_year), np.nan, (ids % 12) + 1),
        "competition_open_since_year": since_year,
        "is_in_promo2": promo2,
        "promo2_since_week": np.where(promo2, (ids % 50) + 1, np.nan),
        "promo2_since_year": np.where(promo2, 2013.0 + ids % 3, np.nan),
        "promo_interval": np.where(
            promo2, np.array(["Jan,Apr,Jul,Oct", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec"])[ids % 3], None),
    })
    for col in ("competition_open_since_month", "competition_open_since_year", "promo2_since_week",
                "promo2_since_year"):
        stores[col] = stores[col].astype("Int32")
    return stores


def _calendar(stores: pd.DataFrame, dates: pd.DatetimeIndex, rng: np.random.Generator) -> pd.DataFrame:
    n_s, n_d = len(stores), len(dates)
    store_id = np.repeat(stores["store_id"].to_numpy(), n_d)
    date = np.tile(dates.to_numpy(), n_s)
    dts = pd.DatetimeIndex(date)
    dow = dts.isocalendar().day.to_numpy().astype(int)
    week = dts.isocalendar().week.to_numpy().astype(int)
    md = dts.month * 100 + dts.day
    holiday = np.full(len(date), "0", dtype=object)
    holiday[np.isin(md, [101, 501, 1003])] = "a"
    holiday[np.isin(md, [405, 406])] = "b"
    holiday[np.isin(md, [1225, 1226])] = "c"
    sunday_open = np.repeat((stores["store_type"] == "b").to_numpy(), n_d)
    is_open = ((dow != 7) | sunday_open) & (holiday == "0")
    refurb = (store_id % 7 == 3) & (dts.year == 2014) & (dts.month == 9)  # a closed month for some stores
    is_open &= ~refurb
    is_promo = (week % 2 == 0) & (dow <= 5)
    school = ((dts.month == 7) | (dts.month == 8) | (md >= 1223)) & (dow <= 5)
    return pd.DataFrame({
        "store_id": store_id.astype("int64"),
        "sale_date": dts.date,
        "is_open": is_open,
        "is_promo": is_promo,
        "state_holiday": holiday.astype(str),
        "is_school_holiday": np.asarray(school, dtype=bool),
    })


def _truth(days: pd.DataFrame, stores: pd.DataFrame, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    level = pd.Series(rng.lognormal(np.log(6000), 0.3, len(stores)), index=stores["store_id"].to_numpy())
    dts = pd.DatetimeIndex(pd.to_datetime(days["sale_date"]))
    dow = dts.day_of_week.to_numpy()
    dow_factor = np.array([1.15, 1.0, 0.95, 0.95, 1.05, 0.9, 0.8])[dow]
    season = 1 + 0.08 * np.sin(2 * np.pi * dts.day_of_year.to_numpy() / 365.25) + 0.25 * (dts.month.to_numpy() == 12)
    sales = (level.reindex(days["store_id"]).to_numpy() * dow_factor * season
             * np.where(days["is_promo"], 1.25, 1.0) * rng.lognormal(0, 0.08, len(days)))
    sales = np.where(days["is_open"], np.round(sales), 0.0)
    customers = np.round(sales / rng.normal(9.3, 0.3, len(days)).clip(7, 12))
    return sales, customers


def build_sample_warehouse(
    path: str | Path,
    *,
    n_stores: int = 4,
    history_start: str = "2014-06-01",
    history_end: str = "2015-07-31",
    horizon_days: int = 42,
    models_dir: str | Path | None = None,
    fit_random_forest: bool = True,
    with_insights: bool = True,
    generation: int = 0,
    seed: int = 7,
) -> SampleWarehouse:
    """Write the sample tables into the DuckDB file ``path`` (created or replaced table by table).

    ``models_dir``: where the fitted random forest goes (``<models_dir>/random_forest/<version>/``);
    required when ``fit_random_forest``. ``generation`` shifts the model versions (a later "run").
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    stores = _stores(n_stores, rng)
    hist_dates = pd.date_range(history_start, history_end, freq="D")
    plan_dates = pd.date_range(pd.Timestamp(history_end) + pd.Timedelta(days=1), periods=horizon_days, freq="D")
    days = _calendar(stores, hist_dates.append(plan_dates), rng)
    sales, customers = _truth(days, stores, rng)
    is_history = pd.to_datetime(days["sale_date"]).to_numpy() <= np.datetime64(pd.Timestamp(history_end))
    days["row_idx"] = np.arange(len(days), dtype="int64")
    actuals = pd.DataFrame({"row_idx": days["row_idx"], "is_history": is_history,
                            "sales": np.where(is_history, sales, np.nan),
                            "customers": np.where(is_history, customers, np.nan)})

    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS marts")
        con.register("sample_stores", stores)
        con.execute("""
            CREATE OR REPLACE TEMP TABLE stores_enriched AS
            SELECT store_id, store_type, assortment, competition_distance_m, competition_open_since_month,
                   competition_open_since_year,
                   CASE WHEN competition_open_since_year IS NOT NULL
                        THEN make_date(competition_open_since_year, competition_open_since_month, 1) END
                       AS competition_open_date,
                   is_in_promo2, promo2_since_week, promo2_since_year,
                   CASE WHEN is_in_promo2 THEN make_date(promo2_since_year, 1, 4)
                        - CAST(isodow(make_date(promo2_since_year, 1, 4)) - 1 AS INTEGER)
                        + 7 * (promo2_since_week - 1) END AS promo2_start_date,
                   promo_interval
            FROM sample_stores""")
        con.register("sample_days", days)
        con.register("sample_actuals", actuals)
        con.execute(f"""
            CREATE OR REPLACE TABLE marts.fct_store_daily_features AS
            SELECT f.* EXCLUDE (row_idx) REPLACE (a.is_history AS is_history, a.sales AS sales,
                                                  a.customers AS customers)
            FROM ({feature_rows_sql('sample_days', 'stores_enriched')}) AS f
            JOIN sample_actuals AS a USING (row_idx)
            ORDER BY store_id, sale_date""")
        con.execute("""
            CREATE OR REPLACE TABLE marts.dim_stores AS
            WITH h AS (
                SELECT store_id, min(sale_date) AS first_history_date, max(sale_date) AS last_history_date,
                       CAST(count(*) AS INTEGER) AS n_history_days,
                       CAST(count(*) FILTER (WHERE is_open) AS INTEGER) AS n_open_days,
                       avg(sales) FILTER (WHERE is_open) AS avg_sales_per_open_day,
                       avg(customers) FILTER (WHERE is_open) AS avg_customers_per_open_day
                FROM marts.fct_store_daily_features WHERE is_history GROUP BY store_id)
            SELECT s.*, h.first_history_date, h.last_history_date, h.n_history_days, h.n_open_days,
                   0 AS n_missing_days, h.avg_sales_per_open_day, h.avg_customers_per_open_day
            FROM stores_enriched s LEFT JOIN h USING (store_id) ORDER BY store_id""")
        con.execute("""
            CREATE OR REPLACE TABLE marts.agg_store_monthly AS
            SELECT store_id, CAST(date_trunc('month', sale_date) AS DATE) AS month_start,
                   sum(sales) AS sales, sum(customers) AS customers,
                   sum(sales) / nullif(sum(customers), 0) AS sales_per_customer,
                   CAST(count(*) FILTER (WHERE is_open) AS INTEGER) AS open_days,
                   CAST(count(*) FILTER (WHERE is_promo) AS INTEGER) AS promo_days,
                   avg(sales) FILTER (WHERE is_open) AS avg_sales_per_open_day,
                   CAST(count(*) AS INTEGER) AS n_days
            FROM marts.fct_store_daily_features WHERE is_history
            GROUP BY ALL ORDER BY store_id, month_start""")
        if with_insights:
            con.execute("""
                CREATE OR REPLACE TABLE marts.insight_promo_uplift AS
                SELECT store_type,
                       avg(sales) FILTER (WHERE is_promo AND is_open) AS avg_sales_promo,
                       avg(sales) FILTER (WHERE NOT is_promo AND is_open) AS avg_sales_no_promo,
                       avg(sales) FILTER (WHERE is_promo AND is_open)
                         / avg(sales) FILTER (WHERE NOT is_promo AND is_open) - 1 AS promo_uplift
                FROM marts.fct_store_daily_features WHERE is_history GROUP BY store_type ORDER BY store_type""")
        con.unregister("sample_days")
        con.unregister("sample_actuals")
        con.unregister("sample_stores")
        feature_frame = con.execute(
            "SELECT * FROM marts.fct_store_daily_features ORDER BY store_id, sale_date").df()
        info = SampleWarehouse(path=path, store_ids=stores["store_id"].astype(int).tolist(),
                               history_end=pd.Timestamp(history_end),
                               horizon=(plan_dates[0], plan_dates[-1]))
        _write_models(con, info, feature_frame, sales, is_history, days, rng,
                      models_dir=Path(models_dir) if models_dir else None,
                      fit_random_forest=fit_random_forest, generation=generation)
        con.execute("CHECKPOINT")
    finally:
        con.close()
    return info


def _store_stats(history: pd.DataFrame):
    """The dbt store statistics of the sample history at the forecast cut (built in a scratch warehouse)."""
    import tempfile

    from forecasting.features import StoreStats, load_store_stats_table
    from warehouse.dbt import load_history_as_raw_sales, run_dbt

    with tempfile.TemporaryDirectory(prefix="sample_stats_") as scratch:
        warehouse = Path(scratch) / "stats.duckdb"
        load_history_as_raw_sales(history, warehouse)
        run_dbt(warehouse, ["run", "--select", "+agg_store_sales_stats"])
        table = load_store_stats_table(warehouse)
    return StoreStats.from_table(table, pd.Timestamp(history["sale_date"].max()) + pd.Timedelta(days=1))


def _write_models(con, info: SampleWarehouse, frame: pd.DataFrame, sales: np.ndarray, is_history: np.ndarray,
                  days: pd.DataFrame, rng: np.random.Generator, *, models_dir: Path | None,
                  fit_random_forest: bool, generation: int) -> None:
    from forecasting.features import prepare_frame

    plan = days.loc[~is_history, ["store_id", "sale_date", "is_open"]].reset_index(drop=True)
    plan_truth = sales[~is_history]
    prepared = prepare_frame(frame)
    history = prepared.loc[prepared["is_history"]]
    for m_idx, model in enumerate(MODELS):
        for v_idx, rmspe in enumerate(RMSPE[model]):
            trained_at = pd.Timestamp("2026-01-01") + pd.Timedelta(days=generation * 10 + v_idx, minutes=m_idx)
            version = trained_at.strftime("%Y%m%dT%H%M%SZ")
            info.versions.setdefault(model, []).append(version)
            artifact = (models_dir or Path("/nonexistent")) / model / version
            if model == "random_forest" and fit_random_forest:
                if models_dir is None:
                    raise ValueError("build_sample_warehouse: models_dir is required to fit the random forest")
                from forecasting.models import random_forest

                artifact.mkdir(parents=True, exist_ok=True)
                params = {**random_forest.FAST_PARAMS, "n_jobs": 1}
                random_forest.save(random_forest.fit(history, params, _store_stats(history)), artifact)
            pred = plan_truth * rng.lognormal(0, rmspe, len(plan_truth))
            forecasts = pd.DataFrame({
                "store_id": plan["store_id"].astype("int32"),
                "forecast_date": pd.to_datetime(plan["sale_date"]),
                "model": model, "model_version": version,
                "sales_pred": pred, "sales_lower": pred * 0.85, "sales_upper": pred * 1.15,
                "customers_pred": None if model == "baseline" else pred / 9.3,
            })
            metrics = pd.DataFrame({"model": model, "model_version": version, "split": "validation",
                                    "metric": ["rmspe", "rmse", "mae", "mape"],
                                    "value": [rmspe, 1000 * rmspe * 7, 1000 * rmspe * 5, rmspe * 0.8]})
            registry = pd.DataFrame([{
                "model": model, "model_version": version, "trained_at": trained_at,
                "train_start": history["sale_date"].min(), "train_end": history["sale_date"].max(),
                "n_train_rows": len(history), "params": json.dumps({"sample": True, "rmspe": rmspe}),
                "artifact_path": str(artifact),
            }])
            write_model_outputs(con, forecasts=forecasts, metrics=metrics, registry=registry)
            info.artifact_dirs[version] = artifact


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, help="DuckDB file to write")
    parser.add_argument("--stores", type=int, default=4)
    parser.add_argument("--start", default="2014-06-01")
    parser.add_argument("--end", default="2015-07-31")
    parser.add_argument("--models-dir", default=None)
    parser.add_argument("--no-model", action="store_true", help="do not fit the random forest artifact")
    args = parser.parse_args(argv)
    info = build_sample_warehouse(args.out, n_stores=args.stores, history_start=args.start, history_end=args.end,
                                  models_dir=args.models_dir, fit_random_forest=not args.no_model)
    print(f"wrote {info.path}: {len(info.store_ids)} stores, horizon {info.horizon[0]:%Y-%m-%d}.."
          f"{info.horizon[1]:%Y-%m-%d}")


if __name__ == "__main__":
    main()
