"""Model assets: one per registered forecaster, and the blend of whatever models ran.

Each model asset trains through :func:`forecasting.runner.train`, writes its artifact folder and hands the
write-back what it needs (forecast, metrics, registry row, fold rows, importance); the fitted model itself stays
in its artifact folder.
"""


import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetKey, MetadataValue, Output, asset

from analytics.charts import forecast_vs_actual_markdown, importance_chart_markdown
from forecasting.artifacts import save_result
from forecasting.blend import BLEND, fit_blend
from forecasting.features import history_rows, load_feature_frame, load_store_stats_table
from forecasting.folds import VALIDATION, fold_frames
from forecasting.importance import (
    IMPORTANCE_COLUMNS,
    METHOD,
    combine_permuted,
    importance_from_permuted,
    permuted_predictions,
)
from forecasting.metrics import mean_rmspe
from forecasting.protocol import MODEL_NAMES, create
from forecasting.runner import TrainingResult, train
from orchestration.assets.metadata import DATA_SCIENCE
from orchestration.resources import DuckDBWarehouse, PlatformPaths, TrainingSettings

FEATURES_KEY = AssetKey(["marts", "fct_store_daily_features"])
STORE_STATS_KEY = AssetKey(["marts", "agg_store_sales_stats"])
MODEL_KINDS = {"baseline": "pandas", "random_forest": "scikit-learn", "hist_gradient_boosting": "scikit-learn",
               "lstm": "tensorflow"}


def model_key(name: str) -> AssetKey:
    return AssetKey(["models", name])


def _output(result: TrainingResult, importance: pd.DataFrame, permuted: pd.DataFrame | None,
            charts: dict[str, str]) -> Output[dict]:
    validation = result.metrics.loc[result.metrics["split"] == VALIDATION].set_index("metric")["value"]
    by_fold = result.metrics.pivot_table(index="split", columns="metric", values="value", sort=False).round(4)
    metadata = {
        "model_version": result.model_version,
        "artifact_path": MetadataValue.path(result.registry["artifact_path"]),
        "forecast_rows": len(result.forecast),
        **{f"validation_{name}": float(value) for name, value in validation.items()},
        "mean_backtest_rmspe": mean_rmspe(result.metrics),
        "fold_metrics": MetadataValue.md(by_fold.to_markdown()),
        **{name: MetadataValue.md(md) for name, md in charts.items()},
    }
    return Output({"forecast": result.forecast, "metrics": result.metrics, "registry": result.registry_frame(),
                   "backtest": result.backtest, "importance": importance[IMPORTANCE_COLUMNS], "permuted": permuted},
                  metadata=metadata)


def _charts(context: AssetExecutionContext, result: TrainingResult, importance: pd.DataFrame,
            training: TrainingSettings) -> dict[str, str]:
    try:  # charts are a convenience: never fail training over them
        return {"feature_importance_chart": importance_chart_markdown(importance, f"{result.model}: permutation importance"),
                "forecast_vs_actual_chart": forecast_vs_actual_markdown(
                    result.validation, f"{result.model}: validation fold", training.interval)}
    except Exception as exc:  # noqa: BLE001
        context.log.warning(f"charts failed: {exc}")
        return {}


def _model_asset(name: str):
    @asset(
        name=name,
        key_prefix="models",
        deps=[FEATURES_KEY, STORE_STATS_KEY],
        group_name="models",
        kinds={MODEL_KINDS.get(name, "python")},
        owners=DATA_SCIENCE,
        description=f"Trains {name}: rolling-origin backtests (backtest_1.., validation = the last horizon of "
                    "history), refit on all history, plan forecast with conformal intervals, permutation "
                    "importance on the validation fold; artifacts under DATA_DIR/models/.",
    )
    def model(context: AssetExecutionContext, warehouse: DuckDBWarehouse, paths: PlatformPaths,
              training: TrainingSettings) -> Output[dict]:
        with warehouse.connect(read_only=True) as con:
            frame, store_stats = load_feature_frame(con), load_store_stats_table(con)
        result = train(create(name, profile=training.profile), frame, store_stats, training.spec)
        save_result(result, paths.models_dir)
        context_rows, target_rows = fold_frames(history_rows(frame), result.validation_fold)
        permuted = permuted_predictions(result.validation_forecaster, context_rows, target_rows)
        importance = importance_from_permuted(permuted).assign(model=name, model_version=result.model_version,
                                                                method=METHOD)
        context.log.info(f"{name} {result.model_version}: validation rmspe "
                         f"{result.meta['fold_metrics'][VALIDATION]['rmspe']:.4f}, "
                         f"mean over folds {result.meta['mean_backtest_rmspe']:.4f}")
        return _output(result, importance, permuted, _charts(context, result, importance, training))

    return model


model_assets = [_model_asset(name) for name in MODEL_NAMES]


@asset(
    key=model_key(BLEND),
    ins={name: AssetIn(model_key(name)) for name in MODEL_NAMES},
    group_name="models",
    kinds={"python"},
    owners=DATA_SCIENCE,
    description="Weighted blend (NNLS on RMSPE) of every model that ran: fold weights fitted on the other folds, "
                "plan weights on all folds, conformal intervals on the blend's own fold residuals.",
)
def blend(context: AssetExecutionContext, paths: PlatformPaths, training: TrainingSettings,
          **members: dict) -> Output[dict]:
    result = fit_blend(members, training.spec)
    save_result(result, paths.models_dir)
    weights = result.forecaster.params["weights"]
    permuted = combine_permuted({n: m["permuted"] for n, m in members.items()},
                                result.forecaster.params["fold_weights"][VALIDATION])
    importance = importance_from_permuted(permuted).assign(model=BLEND, model_version=result.model_version,
                                                           method=METHOD)
    context.log.info(f"blend {result.model_version}: weights "
                     + ", ".join(f"{n}={w:.3f}" for n, w in weights.items()))
    output = _output(result, importance, None, _charts(context, result, importance, training))
    return output.with_metadata({**output.metadata, "weights": MetadataValue.json(weights)})

