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
from forecasting.features import load_feature_frame
from forecasting.models import MODEL_NAMES
from forecasting.training import default_params, fast_params, train_and_forecast
from forecasting.writeback import write_model_outputs
from orchestration.resources import DuckDBWarehouse, PlatformPaths, TrainingSettings

FEATURES_KEY = AssetKey(["marts", "fct_store_daily_features"])
ML_TABLES = {
    "store_sales_forecast": "Daily sales forecasts with 80% intervals per store, model and version.",
    "model_metrics": "Validation metrics (rmspe, rmse, mae, mape) per model version.",
    "model_registry": "Every trained model version: training window, parameters, artifact path.",
}
MODEL_KINDS = {"baseline": "pandas", "random_forest": "scikit-learn", "lstm": "tensorflow"}


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


def _model_asset(model_name: str):
    @asset(
        name=model_name,
        key_prefix="models",
        deps=[FEATURES_KEY],
        group_name="models",
        kinds={MODEL_KINDS[model_name]},
        description=f"Trains the {model_name} model, validates it on the last 42 days of history and "
                    "forecasts the plan; artifacts under DATA_DIR/models/.",
    )
    def train(context: AssetExecutionContext, warehouse: DuckDBWarehouse, paths: PlatformPaths,
              training: TrainingSettings) -> Output[dict]:
        frame = load_feature_frame(warehouse.path)
        params = fast_params(model_name) if training.profile == "fast" else default_params(model_name)
        trained = train_and_forecast(model_name, frame, params, paths.models_dir)
        metrics = trained.metrics.set_index("metric")["value"]
        return Output(
            # What the write-back needs; the fitted model itself stays in its artifact folder.
            {"forecast": trained.forecast, "metrics": trained.metrics, "registry": trained.registry_frame()},
            metadata={
                "model_version": trained.model_version,
                "artifact_path": MetadataValue.path(str(trained.artifact_path)),
                "forecast_rows": len(trained.forecast),
                **{f"validation_{name}": float(value) for name, value in metrics.items()},
            },
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
def ml_tables(context: AssetExecutionContext, warehouse: DuckDBWarehouse,
              baseline: dict, random_forest: dict, lstm: dict):
    """Writes every model's forecasts, metrics and registry row in one transaction."""
    trained = {"baseline": baseline, "random_forest": random_forest, "lstm": lstm}
    forecasts = pd.concat([t["forecast"] for t in trained.values()], ignore_index=True)
    metrics = pd.concat([t["metrics"] for t in trained.values()], ignore_index=True)
    registry = pd.concat([t["registry"] for t in trained.values()], ignore_index=True)
    with warehouse.connect() as con:
        counts = write_model_outputs(con, forecasts=forecasts, metrics=metrics, registry=registry)
    versions = registry[["model", "model_version"]].to_dict("records")
    for table, n_rows in counts.items():
        yield MaterializeResult(asset_key=AssetKey(["ml", table]),
                                metadata={"rows_written": n_rows, "model_versions": versions})
