"""Model assets: one per registered forecaster, and the blend of whatever models ran.

Each model asset first decides, by the retraining policy (:mod:`forecasting.retraining`), whether it refits or its
latest version only forecasts the new origin (:mod:`forecasting.refresh`).  A refit trains through
:func:`forecasting.runner.train` and writes its artifact folder.  Either way the asset hands the write-back what it
needs: the forecast, the decision row and, for a refit, the metrics, registry row, fold rows and importance.  A
pinned champion's version also forecasts the new origin when its model has a newer version.
"""

import json
from dataclasses import dataclass, replace

import pandas as pd
from dagster import AssetExecutionContext, AssetIn, AssetKey, MetadataValue, Output, asset

from analytics.charts import forecast_vs_actual_markdown, importance_chart_markdown
from forecasting.artifacts import save_result
from forecasting.blend import BLEND, fit_blend
from forecasting.features import history_rows, load_feature_frame, load_store_stats_table, plan_rows
from forecasting.refresh import blend_members, forecast_saved_blend, forecast_saved_version, saved_backtest
from forecasting.retraining import REFIT, Decision, VersionState, decide, version_states
from monitoring.checks import CheckOutcome, MonitoringInputError, realised_vs_backtest
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
from forecasting.runner import REGISTRY_COLUMNS, TrainingResult, jsonable, train
from orchestration.assets.metadata import DATA_SCIENCE
from orchestration.assets.monitoring import MonitoringSettings
from orchestration.resources import DuckDBWarehouse, PlatformPaths, Retraining, TrainingSettings
from warehouse.champion import current_pin

FEATURES_KEY = AssetKey(["marts", "fct_store_daily_features"])
STORE_STATS_KEY = AssetKey(["marts", "agg_store_sales_stats"])
RECENT_SALES_KEY = AssetKey(["marts", "agg_store_recent_sales"])  # read with the statistics (load_store_stats_table)
MODEL_KINDS = {"baseline": "pandas", "random_forest": "scikit-learn", "lightgbm": "lightgbm", "lstm": "tensorflow"}


def model_key(name: str) -> AssetKey:
    return AssetKey(["models", name])


@dataclass(frozen=True)
class RefreshFacts:
    """What the retraining policy compares, read once per model asset from the warehouse and the artifacts."""

    states: dict[str, VersionState]  # model -> its latest version
    degradation: CheckOutcome | None  # the monitoring check realised_vs_backtest_accuracy on the current actuals
    pin: tuple[str, str] | None  # the pinned champion (model, version)
    stores: frozenset[int]  # the stores of this run's plan


def _output(result: TrainingResult, importance: pd.DataFrame, permuted: pd.DataFrame | None,
            charts: dict[str, str], decision: pd.DataFrame, pinned: pd.DataFrame | None = None) -> Output[dict]:
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
        "decision": decision["decision"].iat[0],
        "decision_reason": decision["reason"].iat[0],
    }
    return Output({"refit": True, "model_version": result.model_version, "forecast": result.forecast,
                   "pinned_forecast": pinned, "metrics": result.metrics, "registry": result.registry_frame(),
                   "backtest": result.backtest, "importance": importance[IMPORTANCE_COLUMNS], "permuted": permuted,
                   "decision": decision},
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


def _refresh_facts(con, paths: PlatformPaths, monitoring: MonitoringSettings, stores: frozenset[int]) -> RefreshFacts:
    try:  # the forecast-vs-actual view reads this run's actuals already
        degradation = realised_vs_backtest(con, monitoring.thresholds, version_only=True)
    except MonitoringInputError:  # no forecast marts before the first run
        degradation = None
    return RefreshFacts(states=version_states(con, paths.models_dir), degradation=degradation, pin=current_pin(con),
                        stores=stores)


def _registry_row(con, model: str, version: str) -> pd.DataFrame:
    return con.execute("SELECT * FROM ml.model_registry WHERE model = ? AND model_version = ?",
                       [model, version]).df()[REGISTRY_COLUMNS]


def _decision_row(context: AssetExecutionContext, decision: Decision, version: str) -> pd.DataFrame:
    return pd.DataFrame([{"run_id": context.run_id, "model": decision.model, "model_version": version,
                          "decision": decision.decision, "reason": decision.reason,
                          "compared": json.dumps(jsonable(decision.values), sort_keys=True)}])


def _pinned_forecast(context: AssetExecutionContext, name: str, facts: RefreshFacts, version: str,
                     forecast_pinned) -> pd.DataFrame | None:
    """A pinned champion keeps forecasting each new origin even when its model moved on to a newer version."""
    if facts.pin is None or facts.pin[0] != name or facts.pin[1] == version:
        return None
    try:
        return forecast_pinned(facts.pin[1])
    except (OSError, ValueError) as exc:  # its artifact is gone: the champion view then serves its last origin
        context.log.warning(f"pinned {name} {facts.pin[1]} could not forecast the new origin: {exc}")
        return None


def _forecast_only_output(context: AssetExecutionContext, decision: Decision, registry: pd.DataFrame,
                          forecast: pd.DataFrame, backtest: pd.DataFrame, pinned: pd.DataFrame | None) -> Output[dict]:
    version = decision.version.model_version
    return Output(
        {"refit": False, "model_version": version, "forecast": forecast, "pinned_forecast": pinned,
         "registry": registry, "backtest": backtest, "decision": _decision_row(context, decision, version)},
        metadata={"model_version": version, "decision": decision.decision, "decision_reason": decision.reason,
                  "forecast_rows": len(forecast)})


def _model_asset(name: str):
    @asset(
        name=name,
        key_prefix="models",
        deps=[FEATURES_KEY, STORE_STATS_KEY, RECENT_SALES_KEY],
        group_name="models",
        kinds={MODEL_KINDS.get(name, "python")},
        owners=DATA_SCIENCE,
        description=f"{name}: refits or, when the retraining policy allows, lets its latest version forecast the "
                    "new origin (forecasting/retraining.py). A refit runs rolling-origin backtests (backtest_1.., "
                    "validation = the last horizon of history), refits on all history, forecasts the plan with "
                    "conformal intervals and measures permutation importance; artifacts under DATA_DIR/models/.",
    )
    def model(context: AssetExecutionContext, warehouse: DuckDBWarehouse, paths: PlatformPaths,
              training: TrainingSettings, retraining: Retraining, monitoring: MonitoringSettings) -> Output[dict]:
        forecaster = create(name, profile=training.profile)
        with warehouse.connect(read_only=True) as con:
            frame, store_stats = load_feature_frame(con), load_store_stats_table(con)
            facts = _refresh_facts(con, paths, monitoring, frozenset(plan_rows(frame)["store_id"].astype(int)))
            decision = decide(name, facts.states.get(name), stores=facts.stores,
                              params=json.loads(json.dumps(jsonable(forecaster.params))),
                              layout=training.spec.layout(), degradation=facts.degradation,
                              policy=retraining.policy)
            registry = None if decision.refit else _registry_row(con, name, decision.version.model_version)
        context.log.info(f"{name}: {decision.decision.replace('_', '-')} ({decision.reason})")
        pinned = _pinned_forecast(context, name, facts, "" if decision.refit else decision.version.model_version,
                                  lambda v: forecast_saved_version(paths.models_dir / name / v, frame))
        if not decision.refit:
            directory = decision.version.artifact_dir
            return _forecast_only_output(context, decision, registry, forecast_saved_version(directory, frame),
                                         saved_backtest(directory), pinned)
        result = train(forecaster, frame, store_stats, training.spec)
        save_result(result, paths.models_dir, reader_group=paths.reader_group)
        context_rows, target_rows = fold_frames(history_rows(frame), result.validation_fold)
        permuted = permuted_predictions(result.validation_forecaster, context_rows, target_rows)
        importance = importance_from_permuted(permuted).assign(model=name, model_version=result.model_version,
                                                                method=METHOD)
        context.log.info(f"{name} {result.model_version}: validation rmspe "
                         f"{result.meta['fold_metrics'][VALIDATION]['rmspe']:.4f}, "
                         f"mean over folds {result.meta['mean_backtest_rmspe']:.4f}")
        return _output(result, importance, permuted, _charts(context, result, importance, training),
                       _decision_row(context, decision, result.model_version), pinned)

    return model


model_assets = [_model_asset(name) for name in MODEL_NAMES]


def _blend_decision(members: dict[str, dict], facts: RefreshFacts, training: TrainingSettings,
                    retraining: Retraining) -> Decision:
    """The policy's decision for the blend (its weights are not compared as parameters), refitting also when a
    member refit or the saved blend was fitted on other member versions."""
    latest = facts.states.get(BLEND)
    decision = decide(BLEND, latest and replace(latest, params={}), stores=facts.stores, params={},
                      layout=training.spec.layout(), degradation=facts.degradation, policy=retraining.policy)
    if decision.refit:
        return decision
    versions = {n: m["model_version"] for n, m in members.items()}
    refit = sorted(n for n, m in members.items() if m["refit"])
    if refit:
        return Decision(BLEND, REFIT, f"members refit: {', '.join(refit)}", {**decision.values, "members": versions})
    saved = blend_members(latest.artifact_dir)
    if saved != versions:
        return Decision(BLEND, REFIT, "the saved blend was fitted on other member versions",
                        {**decision.values, "members": versions, "saved_members": saved})
    return decision


def _pinned_blend_forecast(paths: PlatformPaths, warehouse: DuckDBWarehouse, version: str,
                           members: dict[str, dict]) -> pd.DataFrame:
    """A pinned blend over the member versions it was fitted on: members that moved on forecast from their saved
    versions."""
    directory = paths.models_dir / BLEND / version
    wanted = blend_members(directory)
    stale = {n: v for n, v in wanted.items() if members[n]["model_version"] != v}
    frame = None
    if stale:
        with warehouse.connect(read_only=True) as con:
            frame = load_feature_frame(con)
    forecasts = {n: (forecast_saved_version(paths.models_dir / n / stale[n], frame) if n in stale
                     else members[n]["forecast"]) for n in wanted}
    return forecast_saved_blend(directory, forecasts)


@asset(
    key=model_key(BLEND),
    ins={name: AssetIn(model_key(name)) for name in MODEL_NAMES},
    group_name="models",
    kinds={"python"},
    owners=DATA_SCIENCE,
    description="Weighted blend (NNLS on RMSPE) of every model that ran: fold weights fitted on the other folds, "
                "plan weights on all folds, conformal intervals on the blend's own fold residuals. Refits when a "
                "member refit or the policy asks; otherwise the saved weights blend the members' new forecasts.",
)
def blend(context: AssetExecutionContext, warehouse: DuckDBWarehouse, paths: PlatformPaths,
          training: TrainingSettings, retraining: Retraining, monitoring: MonitoringSettings,
          **members: dict) -> Output[dict]:
    first = next(iter(members.values()))["forecast"]
    with warehouse.connect(read_only=True) as con:
        facts = _refresh_facts(con, paths, monitoring, frozenset(first["store_id"].astype(int)))
        decision = _blend_decision(members, facts, training, retraining)
        registry = None if decision.refit else _registry_row(con, BLEND, decision.version.model_version)
    context.log.info(f"{BLEND}: {decision.decision.replace('_', '-')} ({decision.reason})")
    pinned = _pinned_forecast(context, BLEND, facts, "" if decision.refit else decision.version.model_version,
                              lambda v: _pinned_blend_forecast(paths, warehouse, v, members))
    if not decision.refit:
        directory = decision.version.artifact_dir
        forecast = forecast_saved_blend(directory, {n: m["forecast"] for n, m in members.items()})
        return _forecast_only_output(context, decision, registry, forecast, saved_backtest(directory), pinned)
    result = fit_blend(members, training.spec)
    save_result(result, paths.models_dir, reader_group=paths.reader_group)
    weights = result.forecaster.params["weights"]
    permuted = {n: m.get("permuted") for n, m in members.items()}
    if all(p is not None for p in permuted.values()):
        combined = combine_permuted(permuted, result.forecaster.params["fold_weights"][VALIDATION])
        importance = importance_from_permuted(combined).assign(model=BLEND, model_version=result.model_version,
                                                                method=METHOD)
    else:  # a member only forecast this time: its validation-fold permutations were not recomputed
        importance = pd.DataFrame(columns=IMPORTANCE_COLUMNS)
    context.log.info(f"blend {result.model_version}: weights "
                     + ", ".join(f"{n}={w:.3f}" for n, w in weights.items()))
    output = _output(result, importance, None, _charts(context, result, importance, training),
                     _decision_row(context, decision, result.model_version), pinned)
    return output.with_metadata({**output.metadata, "weights": MetadataValue.json(weights)})
