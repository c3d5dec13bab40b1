"""Model training assets, the feature-mart validation that gates them, and the `ml` write-back."""

import pandas as pd
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetExecutionContext,
    AssetIn,
    AssetKey,
    AssetSpec,
    MaterializeResult,
    MetadataValue,
    Output,
    asset,
    asset_check,
    multi_asset,
)

from expectations import validate_table
from forecasting.backtest import mean_rmspe
from forecasting.folds import VALIDATION, fold_frames, make_folds
from analytics.diagnostics import series_diagnostics
from forecasting.explain import (
    IMPORTANCE_COLUMNS,
    METHOD,
    combine_permuted,
    forecast_vs_actual_markdown,
    importance_chart_markdown,
    importance_from_permuted,
    permuted_predictions,
)
from forecasting.features import history_rows, load_feature_frame, load_store_stats_table
from forecasting.models import MODEL_NAMES, get_model
from forecasting.training import (
    BLEND,
    champion,
    default_params,
    fast_params,
    prune_artifacts,
    train_and_forecast,
    train_blend,
)
from warehouse.writeback import write_model_outputs
from orchestration.resources import DuckDBWarehouse, PlatformPaths, TrainingSettings

FEATURES_KEY = AssetKey(["marts", "fct_store_daily_features"])
STORE_STATS_KEY = AssetKey(["marts", "agg_store_sales_stats"])
ML_TABLES = {
    "store_sales_forecast": "Daily sales forecasts with 80% intervals per store, model and version.",
    "model_metrics": "Backtest and validation metrics (rmspe, rmse, mae, mape, coverage_80) per model version "
                     "and fold (split backtest_1.., validation = the last 42 days of history).",
    "model_registry": "Every trained model version: training window, parameters, artifact path.",
    "feature_importance": "Permutation importance (RMSPE increase) of each mart column on the validation fold.",
    "series_diagnostics": "Per store: ADF stationarity test and autocorrelation (lags 1, 7, 14) of log sales.",
    "champion_forecast": "View: the forecast of the model with the best mean backtest RMSPE (latest versions).",
}
MODEL_KINDS = {"baseline": "pandas", "random_forest": "scikit-learn", "hist_gradient_boosting": "scikit-learn",
               "lstm": "tensorflow"}


@asset_check(asset=FEATURES_KEY, name="great_expectations", blocking=True,
             description="Great Expectations suite for the feature mart; a failure stops training.")
def features_expectations(warehouse: DuckDBWarehouse, paths: PlatformPaths) -> AssetCheckResult:
    outcome = validate_table(warehouse.path, "marts.fct_store_daily_features",
                             data_docs_dir=paths.reports_dir / "data_docs")
    return AssetCheckResult(
        passed=outcome.success,
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "expectations": outcome.n_expectations,
            "rows": outcome.n_rows,
            "blocking_failures": len(outcome.blocking_failures),
            "warnings": len(outcome.warnings),
            "summary": MetadataValue.md(outcome.summary_markdown()),
        },
    )


def _metrics_markdown(metrics: pd.DataFrame) -> str:
    t = metrics.pivot_table(index="split", columns="metric", values="value", sort=False)
    return t.round(4).to_markdown() if hasattr(t, "to_markdown") else t.round(4).to_string()


def _model_asset(model_name: str):
    @asset(
        name=model_name,
        key_prefix="models",
        deps=[FEATURES_KEY, STORE_STATS_KEY],
        group_name="models",
        kinds={MODEL_KINDS[model_name]},
        description=f"Trains the {model_name} model: rolling-origin backtests (backtest_1.., validation = the "
                    "last 42 days of history), refit on all history, plan forecast with conformal 80% intervals, "
                    "permutation importance on the validation fold; artifacts under DATA_DIR/models/.",
    )
    def train(context: AssetExecutionContext, warehouse: DuckDBWarehouse, paths: PlatformPaths,
              training: TrainingSettings) -> Output[dict]:
        frame = load_feature_frame(warehouse.path)
        params = fast_params(model_name) if training.profile == "fast" else default_params(model_name)
        trained = train_and_forecast(model_name, frame, params, paths.models_dir,
                                     store_stats=load_store_stats_table(warehouse.path))
        hist = history_rows(frame)
        context_rows, target_rows = fold_frames(hist, make_folds(hist)[-1])
        permuted = permuted_predictions(get_model(model_name), trained.fitted_validation, context_rows, target_rows)
        importance = importance_from_permuted(permuted).assign(model=model_name, model_version=trained.model_version, method=METHOD)
        validation = trained.metrics.loc[trained.metrics["split"] == "validation"].set_index("metric")["value"]
        metadata = {
            "model_version": trained.model_version,
            "artifact_path": MetadataValue.path(str(trained.artifact_path)),
            "forecast_rows": len(trained.forecast),
            **{f"validation_{name}": float(value) for name, value in validation.items()},
            "mean_backtest_rmspe": mean_rmspe(trained.metrics),
            "fold_metrics": MetadataValue.md(_metrics_markdown(trained.metrics)),
        }
        try:  # charts are a convenience: never fail training over them
            metadata["feature_importance_chart"] = MetadataValue.md(
                importance_chart_markdown(importance, f"{model_name}: permutation importance"))
            metadata["forecast_vs_actual_chart"] = MetadataValue.md(
                forecast_vs_actual_markdown(trained.validation, f"{model_name}: validation fold"))
        except Exception as exc:  # noqa: BLE001
            context.log.warning(f"charts failed: {exc}")
        return Output(
            # What the write-back and the blend need; the fitted model itself stays in its artifact folder.
            {"forecast": trained.forecast, "metrics": trained.metrics, "registry": trained.registry_frame(),
             "backtest": trained.backtest, "importance": importance[IMPORTANCE_COLUMNS], "permuted": permuted},
            metadata=metadata,
        )

    return train


model_assets = [_model_asset(name) for name in MODEL_NAMES]


@multi_asset(
    name="ml_tables",
    ins={name: AssetIn(AssetKey(["models", name])) for name in MODEL_NAMES},
    specs=[AssetSpec(AssetKey(["ml", t]), description=d, group_name="ml", kinds={"duckdb"},
                     deps=[AssetKey(["models", n]) for n in MODEL_NAMES])
           for t, d in ML_TABLES.items()],
)
def ml_tables(context: AssetExecutionContext, warehouse: DuckDBWarehouse, paths: PlatformPaths, training: TrainingSettings,
              baseline: dict, random_forest: dict, hist_gradient_boosting: dict, lstm: dict):
    """Fits the blend, then writes every model's forecasts, metrics, registry row and feature importance,
    the series diagnostics and the champion view in one transaction."""
    trained = {"baseline": baseline, "random_forest": random_forest,
               "hist_gradient_boosting": hist_gradient_boosting, "lstm": lstm}
    blend = train_blend({n: {"backtest": t["backtest"], "forecast": t["forecast"], "registry": t["registry"]}
                         for n, t in trained.items()}, paths.models_dir)
    outputs = [*trained.values(), {"forecast": blend.forecast, "metrics": blend.metrics,
                                   "registry": blend.registry_frame()}]
    forecasts = pd.concat([t["forecast"] for t in outputs], ignore_index=True)
    metrics = pd.concat([t["metrics"] for t in outputs], ignore_index=True)
    registry = pd.concat([t["registry"] for t in outputs], ignore_index=True)
    blend_permuted = combine_permuted({n: t["permuted"] for n, t in trained.items()},
                                      blend.fitted["fold_weights"][VALIDATION])
    blend_importance = importance_from_permuted(blend_permuted).assign(
        model=BLEND, model_version=blend.model_version, method=METHOD)[IMPORTANCE_COLUMNS]
    importance = pd.concat([*(t["importance"] for t in trained.values()), blend_importance], ignore_index=True)
    hist = history_rows(load_feature_frame(warehouse.path))
    diagnostics = series_diagnostics(hist).assign(history_end=hist["sale_date"].max().date())
    with warehouse.connect() as con:
        counts = write_model_outputs(con, forecasts=forecasts, metrics=metrics, registry=registry,
                                     feature_importance=importance, series_diagnostics=diagnostics)
    pruned = prune_artifacts(paths.models_dir, training.keep_versions)
    if pruned:
        context.log.info(f"removed {len(pruned)} old model artifact folders (keeping {training.keep_versions} per model)")
    best = champion(metrics)
    scores = (metrics.loc[metrics["metric"] == "rmspe"].groupby("model")["value"].mean().sort_values()
              .rename("mean_rmspe").to_frame())
    versions = registry[["model", "model_version"]].to_dict("records")
    counts["champion_forecast"] = int((forecasts["model"] == best).sum())
    extra = {
        "model_metrics": {"mean_rmspe_by_model": MetadataValue.md(scores.round(4).to_markdown()),
                          "blend_weights": MetadataValue.json(blend.fitted["weights"])},
        "champion_forecast": {"champion": best},
        "series_diagnostics": {"stationary_share": float(diagnostics["is_stationary"].mean()),
                               "median_acf_lag7": float(diagnostics["acf_lag7"].median())},
    }
    try:  # a chart is a convenience: never fail the write-back over it
        extra["feature_importance"] = {"blend_importance_chart": MetadataValue.md(
            importance_chart_markdown(blend_importance, "blend: permutation importance"))}
    except Exception as exc:  # noqa: BLE001
        context.log.warning(f"blend importance chart failed: {exc}")
    for table, n_rows in counts.items():
        yield MaterializeResult(asset_key=AssetKey(["ml", table]),
                                metadata={"rows_written": n_rows, "model_versions": versions, **extra.get(table, {})})
