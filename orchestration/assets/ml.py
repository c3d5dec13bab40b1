"""The `ml` write-back: every model's and the blend's outputs, and the series diagnostics, in one transaction."""


import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetKey, AssetSpec, MaterializeResult, MetadataValue, multi_asset

from analytics.diagnostics import series_diagnostics
from forecasting.blend import BLEND
from forecasting.features import history_rows, load_feature_frame
from forecasting.protocol import MODEL_NAMES
from orchestration.assets.metadata import DATA_SCIENCE, ROW_COUNT
from orchestration.assets.models import model_key
from orchestration.resources import DuckDBWarehouse
from warehouse.writeback import write_model_outputs

ML_TABLES = {
    "store_sales_forecast": "Daily sales forecasts with prediction intervals per store, model and version.",
    "model_metrics": "Backtest and validation metrics (rmspe, rmse, mae, mape, interval coverage) per model "
                     "version and fold (split backtest_1.., validation = the last horizon of history).",
    "model_registry": "Every trained model version: training window, parameters, artifact path.",
    "feature_importance": "Permutation importance (RMSPE increase) of each mart column on the validation fold.",
    "backtest_forecast": "Every version's backtest fold rows (split, store, day): actuals, forecast and interval.",
    "series_diagnostics": "Per store: ADF stationarity test and autocorrelation (lags 1, 7, 14) of log sales.",
    "training_decisions": "Per run and model: refit or forecast-only, why, and the values the retraining policy "
                          "compared (forecasting/retraining.py).",
}
WRITTEN = (*MODEL_NAMES, BLEND)


@multi_asset(
    name="ml_tables",
    ins={name: AssetIn(model_key(name)) for name in WRITTEN},
    specs=[AssetSpec(AssetKey(["ml", table]), description=text, group_name="ml", kinds={"duckdb"},
                     deps=[model_key(name) for name in WRITTEN], owners=DATA_SCIENCE)
           for table, text in ML_TABLES.items()],
)
def ml_tables(context: AssetExecutionContext, warehouse: DuckDBWarehouse, **trained: dict):
    """Writes the forecasts, metrics, registry rows and feature importance of every model that ran, and the
    series diagnostics, replacing only the rows of the versions written."""
    with warehouse.connect(read_only=True) as con:
        hist = history_rows(load_feature_frame(con))
    diagnostics = series_diagnostics(hist).assign(history_end=hist["sale_date"].max().date())
    refit = [t for t in trained.values() if t["refit"]]
    # the rows of the models that refit (None on a forecast-only refresh: those tables are left as they are)
    frames = {key: pd.concat([t[key] for t in refit], ignore_index=True) if refit else None
              for key in ("metrics", "registry", "importance")}
    frames["forecast"] = pd.concat([f for t in trained.values() for f in (t["forecast"], t["pinned_forecast"])
                                    if f is not None], ignore_index=True)
    # the fold rows carry no version: stamp each with its model's registry row
    frames["backtest"] = pd.concat([t["backtest"].assign(model=t["registry"]["model"].iat[0],
                                                         model_version=t["registry"]["model_version"].iat[0])
                                    for t in refit], ignore_index=True) if refit else None
    decisions = pd.concat([t["decision"] for t in trained.values()], ignore_index=True)
    with warehouse.connect() as con:
        counts = write_model_outputs(con, forecasts=frames["forecast"], metrics=frames["metrics"],
                                     registry=frames["registry"], feature_importance=frames["importance"],
                                     backtest=frames["backtest"],
                                     series_diagnostics=diagnostics, decisions=decisions)
        # The per-version tables keep earlier versions' rows: the row count is the table's, not this run's.
        totals = {t: con.execute(f'SELECT count(*) FROM ml."{t}"').fetchall()[0][0] for t in ML_TABLES}
    versions = decisions[["model", "model_version", "decision"]].to_dict("records")
    extra = {
        "series_diagnostics": {"stationary_share": float(diagnostics["is_stationary"].mean()),
                               "median_acf_lag7": float(diagnostics["acf_lag7"].median())},
    }
    if refit:
        metrics = frames["metrics"]
        scores = (metrics.loc[metrics["metric"] == "rmspe"].groupby("model")["value"].mean()
                  .sort_values().rename("mean_rmspe").to_frame())
        extra["model_metrics"] = {"mean_rmspe_by_model": MetadataValue.md(scores.round(4).to_markdown())}
    context.log.info("wrote " + ", ".join(f"ml.{t}: {n:,} rows" for t, n in counts.items()))
    for table in ML_TABLES:  # a forecast-only refresh writes no fold rows: 0 written, the table as it was
        yield MaterializeResult(asset_key=AssetKey(["ml", table]),
                                metadata={ROW_COUNT: totals[table], "rows_written": counts.get(table, 0),
                                          "model_versions": versions, **extra.get(table, {})})
