"""Train a model: rolling-origin backtests, refit on all history, forecast the plan, save the artifacts.

:func:`train_and_forecast` is the single entry point the orchestration layer calls::

    history --folds--> backtest_1, backtest_2, ..., validation (the last ``horizon_days`` days)
    per fold: fit(data before the cut) -> predict(the fold's 42 days) -> metrics, residuals
    conformal 80% interval factors per horizon week from the fold residuals (a fold's own interval is
    calibrated on the other folds; the plan's on all folds)
    refit(all history) -> predict(plan rows) -> forecast with intervals
    save  models_dir/<model>/<version>/{model artifact, forecast.parquet, metrics.parquet, backtest.parquet, meta.json}

See :mod:`forecasting.backtest` for the fold, interval and blend definitions.  ``ml.model_metrics`` gets one
row per fold and metric (rmspe, rmse, mae, mape, coverage_80); ``split`` is the fold name.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from forecasting.backtest import (
    COVERAGE_METRIC,
    add_fold_intervals,
    apply_factors,
    blend_backtest,
    blend_weights,
    combine,
    conformal_factors,
    fold_metrics,
    mean_rmspe,
    run_backtest,
)
from forecasting.folds import VALIDATION, ForecastSpec, make_folds
from forecasting.metrics import rmspe
from forecasting.features import StoreStats, history_rows, plan_rows, prepare_frame
from forecasting.models import MODEL_NAMES, get_model

FORECAST_COLUMNS = [
    "store_id",
    "forecast_date",
    "model",
    "model_version",
    "sales_pred",
    "sales_lower",
    "sales_upper",
    "customers_pred",
]
METRIC_COLUMNS = ["model", "model_version", "split", "metric", "value"]
DEFAULT_INTERVAL = 0.8


def _defaults() -> dict[str, dict]:
    return {name: dict(get_model(name).DEFAULT_PARAMS) for name in MODEL_NAMES}


def default_params(model_name: str) -> dict:
    """A copy of the model's DEFAULT_PARAMS."""
    return dict(get_model(model_name).DEFAULT_PARAMS)


def fast_params(model_name: str) -> dict:
    """A copy of the model's FAST_PARAMS: tiny settings for tests and smoke runs."""
    return dict(get_model(model_name).FAST_PARAMS)


def __getattr__(name: str):  # DEFAULT_PARAMS / FAST_PARAMS resolved lazily (the LSTM module imports TensorFlow)
    if name == "DEFAULT_PARAMS":
        return _defaults()
    if name == "FAST_PARAMS":
        return {n: fast_params(n) for n in MODEL_NAMES}
    raise AttributeError(name)


@dataclass
class TrainedModel:
    """Everything one training run produced.

    ``forecast``: the ml.store_sales_forecast columns except created_at (one row per plan store-day).
    ``metrics``: model, model_version, split (backtest_1.., validation), metric, value.
    ``registry``: the ml.model_registry row as a dict (params as a dict; see :meth:`registry_frame`).
    """

    model: str
    model_version: str
    artifact_path: str
    forecast: pd.DataFrame
    metrics: pd.DataFrame
    registry: dict
    fitted: Any = field(default=None, repr=False)
    validation: pd.DataFrame | None = field(default=None, repr=False)
    interval_factors: pd.DataFrame | None = field(default=None, repr=False)
    timings: dict = field(default_factory=dict)
    backtest: pd.DataFrame | None = field(default=None, repr=False)  # every fold's rows with intervals
    fitted_validation: Any = field(default=None, repr=False)  # the model of the validation fold
    fold_timings: dict = field(default_factory=dict)

    def registry_frame(self) -> pd.DataFrame:
        """One-row frame in ml.model_registry's column order, params as JSON text."""
        r = dict(self.registry)
        r["params"] = json.dumps(r["params"], sort_keys=True, default=str)
        return pd.DataFrame([r])[
            ["model", "model_version", "trained_at", "train_start", "train_end", "n_train_rows", "params", "artifact_path"]
        ]


def new_model_version(now: datetime | None = None) -> str:
    """UTC timestamp with microseconds, e.g. ``20261124T101500123456Z``."""
    now = now or datetime.now(timezone.utc)
    return now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")


def _version_dir(models_dir: Path, model_name: str) -> tuple[str, Path]:
    base = models_dir / model_name
    base.mkdir(parents=True, exist_ok=True)
    while True:  # two runs in the same microsecond must not share a directory
        version = new_model_version()
        path = base / version
        try:
            path.mkdir()
            return version, path
        except FileExistsError:
            time.sleep(1e-6)


def _log(model: str, msg: str) -> None:
    print(f"[training] {model}: {msg}", flush=True)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, (pd.Timestamp, datetime)):
        return obj.isoformat()
    return obj


def train_and_forecast(
    model_name: str,
    frame: pd.DataFrame,
    params: dict | None = None,
    models_dir: str | Path = "data/models",
    horizon_days: int = 42,
    interval: float = DEFAULT_INTERVAL,
    n_folds: int = ForecastSpec.n_folds,
    store_stats: pd.DataFrame | None = None,
) -> TrainedModel:
    """Backtest, refit on all history, forecast the plan rows and save artifacts (see module docstring).

    ``frame``: marts.fct_store_daily_features rows (history and plan); ``store_stats``: marts.agg_store_sales_stats
    rows with every fold's cut and the forecast cut (:func:`forecasting.features.load_store_stats_table`; the LSTM
    alone can do without).  ``params`` override the model's DEFAULT_PARAMS.  Returns a :class:`TrainedModel`; artifacts go to ``models_dir/<model>/<version>/``.
    """
    t_all = time.perf_counter()
    module = get_model(model_name)
    p = {**module.DEFAULT_PARAMS, **(params or {})}
    timings: dict[str, float] = {}

    df = prepare_frame(frame)
    hist, plan = history_rows(df), plan_rows(df)
    if hist.empty:
        raise ValueError("train_and_forecast: the frame has no history rows")
    try:
        folds = make_folds(hist, n_folds, horizon_days)
    except ValueError as exc:
        raise ValueError(f"train_and_forecast: {exc}") from exc
    _log(
        model_name,
        f"{hist['store_id'].nunique()} stores; history {hist['sale_date'].min():%Y-%m-%d}..{hist['sale_date'].max():%Y-%m-%d} "
        f"({len(hist):,} rows), {len(folds)} folds of {horizon_days} days, plan {len(plan):,} rows",
    )
    bt = run_backtest(model_name, module, hist, p, folds, store_stats, log=lambda m: _log(model_name, m))
    timings["fit_backtests"] = sum(t["fit_s"] for t in bt.timings.values())
    timings["predict_backtests"] = sum(t["predict_s"] for t in bt.timings.values())
    timings["fit_train"] = bt.timings[VALIDATION]["fit_s"]
    timings["predict_validation"] = bt.timings[VALIDATION]["predict_s"]
    backtest = add_fold_intervals(bt.predictions, interval)
    fold_m = fold_metrics(backtest)
    factors = conformal_factors(backtest, interval)
    valid = backtest.loc[backtest["split"] == VALIDATION]
    m = fold_m.loc[fold_m["split"] == VALIDATION].set_index("metric")["value"].to_dict()
    extra = {"customers_rmspe": rmspe(valid["customers"], valid["customers_pred"], valid["is_open"]),
             "mean_backtest_rmspe": mean_rmspe(fold_m)}
    _log(
        model_name,
        f"validation rmspe={m['rmspe']:.4f} rmse={m['rmse']:.1f} mae={m['mae']:.1f} mape={m['mape']:.4f} "
        f"coverage_80={m[COVERAGE_METRIC]:.3f} customers_rmspe={extra['customers_rmspe']:.4f}; "
        f"mean rmspe over folds {extra['mean_backtest_rmspe']:.4f}",
    )

    plan_start = pd.Timestamp(hist["sale_date"].max()) + pd.Timedelta(days=1)
    t = time.perf_counter()
    if hasattr(module, "refit"):
        final = module.refit(bt.last_fitted, hist, p)
    else:
        final = module.fit(hist, p, None if store_stats is None else StoreStats.from_table(store_stats, plan_start))
    timings["fit_full"] = time.perf_counter() - t
    _log(model_name, f"refit on all history {timings['fit_full']:.1f}s")

    t = time.perf_counter()
    if plan.empty:
        _log(model_name, "WARNING: no plan rows, the forecast is empty")
    ppred = module.predict(final, hist, plan)
    timings["predict_plan"] = time.perf_counter() - t
    horizon_day = (pd.to_datetime(ppred["sale_date"]) - plan_start).dt.days.to_numpy()
    lo, hi = apply_factors(ppred["sales_pred"], horizon_day, factors)

    version_str, vdir = _version_dir(Path(models_dir), model_name)
    forecast = pd.DataFrame(
        {
            "store_id": ppred["store_id"].astype("int32").to_numpy(),
            "forecast_date": pd.to_datetime(ppred["sale_date"]).dt.normalize().to_numpy(),
            "model": model_name,
            "model_version": version_str,
            "sales_pred": ppred["sales_pred"].to_numpy(float),
            "sales_lower": np.minimum(lo, ppred["sales_pred"].to_numpy(float)),
            "sales_upper": np.maximum(hi, ppred["sales_pred"].to_numpy(float)),
            "customers_pred": ppred["customers_pred"].to_numpy(float),
        }
    )[FORECAST_COLUMNS]
    metrics = fold_m.copy()
    metrics.insert(0, "model_version", version_str)
    metrics.insert(0, "model", model_name)
    metrics = metrics[METRIC_COLUMNS].reset_index(drop=True)
    validation = valid[["store_id", "sale_date", "is_open", "sales", "customers", "sales_pred", "sales_lower",
                        "sales_upper", "customers_pred"]].reset_index(drop=True)

    t = time.perf_counter()
    model_path = module.save(final, vdir)
    forecast.to_parquet(vdir / "forecast.parquet", index=False)
    metrics.to_parquet(vdir / "metrics.parquet", index=False)
    backtest.to_parquet(vdir / "backtest.parquet", index=False)
    timings["save"] = time.perf_counter() - t
    timings["total"] = time.perf_counter() - t_all
    trained_at = datetime.now(timezone.utc).replace(tzinfo=None)
    registry = {
        "model": model_name,
        "model_version": version_str,
        "trained_at": trained_at,
        "train_start": pd.Timestamp(hist["sale_date"].min()).date(),
        "train_end": pd.Timestamp(hist["sale_date"].max()).date(),
        "n_train_rows": int(len(hist)),
        "params": _jsonable(p),
        "artifact_path": str(vdir.resolve()),
    }
    meta = {
        **_jsonable({k: (v.isoformat() if hasattr(v, "isoformat") else v) for k, v in registry.items()}),
        "model_file": model_path.name,
        "horizon_days": horizon_days,
        "interval": interval,
        "folds": [{"split": f.split, "train_end": f.cutoff.date().isoformat(), "start": f.start.date().isoformat(),
                   "end": f.end.date().isoformat(), **{k: round(v, 3) for k, v in bt.timings[f.split].items()}}
                  for f in folds],
        "validation_start": folds[-1].start.date().isoformat(),
        "validation_end": folds[-1].end.date().isoformat(),
        "validation_metrics": {**{k: float(v) for k, v in m.items()}, **extra},
        "fold_metrics": fold_m.pivot(index="split", columns="metric", values="value").to_dict(orient="index"),
        "interval_factors": factors.to_dict(orient="list"),
        "plan_rows": int(len(plan)),
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
    (vdir / "meta.json").write_text(json.dumps(_jsonable(meta), indent=2, default=str))
    _log(model_name, f"version {version_str} saved to {vdir} (total {timings['total']:.1f}s)")
    return TrainedModel(
        model=model_name,
        model_version=version_str,
        artifact_path=str(vdir.resolve()),
        forecast=forecast,
        metrics=metrics,
        registry=registry,
        fitted=final,
        validation=validation,
        interval_factors=factors,
        timings=timings,
        backtest=backtest,
        fitted_validation=bt.last_fitted,
        fold_timings=bt.timings,
    )


BLEND = "blend"


def train_blend(
    members: dict[str, dict],
    models_dir: str | Path = "data/models",
    interval: float = DEFAULT_INTERVAL,
) -> TrainedModel:
    """The weighted blend of already trained models (see :mod:`forecasting.backtest`).

    ``members``: model name -> {"backtest": fold rows (TrainedModel.backtest), "forecast": plan forecast,
    "registry": registry row (dict or one-row frame)}.  Fold metrics use weights fitted on the other folds;
    the plan forecast uses weights fitted on all folds; intervals are conformal on the blend's fold residuals.
    """
    t0 = time.perf_counter()
    names = sorted(members)
    preds = {n: members[n]["backtest"].reset_index(drop=True) for n in names}
    backtest, per_fold = blend_backtest(preds, interval)
    fold_m = fold_metrics(backtest)
    weights = blend_weights(preds)
    factors = conformal_factors(backtest, interval)
    keys = ["store_id", "forecast_date"]
    base = members[names[0]]["forecast"][keys].reset_index(drop=True)
    aligned = {}
    for n in names:
        f = base.merge(members[n]["forecast"], on=keys, how="left", validate="one_to_one")
        aligned[n] = f.rename(columns={"forecast_date": "sale_date"})
    combined = combine(aligned, weights)
    version_str, vdir = _version_dir(Path(models_dir), BLEND)
    regs = {n: (members[n]["registry"].iloc[0].to_dict() if isinstance(members[n]["registry"], pd.DataFrame)
                else dict(members[n]["registry"])) for n in names}
    first_forecast = pd.to_datetime(base["forecast_date"]).min() if len(base) else pd.NaT
    plan_start = pd.Timestamp(max(r["train_end"] for r in regs.values())) + pd.Timedelta(days=1)
    horizon_day = (pd.to_datetime(base["forecast_date"]) - plan_start).dt.days.to_numpy()
    sales = np.asarray(combined["sales_pred"], dtype=float).clip(min=0)
    lo, hi = apply_factors(sales, horizon_day, factors)
    forecast = pd.DataFrame({
        "store_id": base["store_id"].astype("int32").to_numpy(),
        "forecast_date": pd.to_datetime(base["forecast_date"]).to_numpy(),
        "model": BLEND,
        "model_version": version_str,
        "sales_pred": sales,
        "sales_lower": np.minimum(lo, sales),
        "sales_upper": np.maximum(hi, sales),
        "customers_pred": np.asarray(combined["customers_pred"], dtype=float).clip(min=0),
    })[FORECAST_COLUMNS]
    metrics = fold_m.copy()
    metrics.insert(0, "model_version", version_str)
    metrics.insert(0, "model", BLEND)
    metrics = metrics[METRIC_COLUMNS].reset_index(drop=True)
    params = {"weights": weights, "members": {n: regs[n]["model_version"] for n in names},
              "fold_weights": per_fold, "method": "nnls_rmspe"}
    forecast.to_parquet(vdir / "forecast.parquet", index=False)
    metrics.to_parquet(vdir / "metrics.parquet", index=False)
    backtest.to_parquet(vdir / "backtest.parquet", index=False)
    (vdir / "blend.json").write_text(json.dumps(_jsonable({**params, "interval_factors": factors.to_dict(orient="list"),
                                                            "first_forecast_date": first_forecast}), indent=2, default=str))
    any_reg = regs[names[0]]
    registry = {
        "model": BLEND,
        "model_version": version_str,
        "trained_at": datetime.now(timezone.utc).replace(tzinfo=None),
        "train_start": min(r["train_start"] for r in regs.values()),
        "train_end": max(r["train_end"] for r in regs.values()),
        "n_train_rows": int(any_reg["n_train_rows"]),
        "params": _jsonable(params),
        "artifact_path": str(vdir.resolve()),
    }
    valid = backtest.loc[backtest["split"] == VALIDATION]
    m = fold_m.loc[fold_m["split"] == VALIDATION].set_index("metric")["value"].to_dict()
    _log(BLEND, f"weights {', '.join(f'{n}={w:.3f}' for n, w in weights.items())}; validation rmspe={m['rmspe']:.4f} "
                f"coverage_80={m[COVERAGE_METRIC]:.3f}; mean rmspe over folds {mean_rmspe(fold_m):.4f}")
    return TrainedModel(
        model=BLEND, model_version=version_str, artifact_path=str(vdir.resolve()), forecast=forecast,
        metrics=metrics, registry=registry, fitted=params,
        validation=valid[["store_id", "sale_date", "is_open", "sales", "customers", "sales_pred", "sales_lower",
                          "sales_upper", "customers_pred"]].reset_index(drop=True),
        interval_factors=factors, timings={"total": time.perf_counter() - t0}, backtest=backtest,
    )


def prune_artifacts(models_dir: str | Path, keep: int) -> list[Path]:
    """Delete all but the newest ``keep`` version folders of each model under ``models_dir`` (versions sort by
    time); returns the deleted folders.

    The ml tables keep every version's rows; only the artifacts go (a random forest's is ~140 MB on the real
    data).  Run after a successful write-back, so the versions just written are the newest; ``keep`` >= 2 also
    keeps the previous run's, which the published copy still serves until this run is published.
    """
    import shutil

    if keep < 2:
        raise ValueError("prune_artifacts: keep at least 2 versions (this run's and the published one's)")
    deleted = []
    for model_dir in sorted(p for p in Path(models_dir).iterdir() if p.is_dir()) if Path(models_dir).is_dir() else []:
        versions = sorted((p for p in model_dir.iterdir() if p.is_dir()), key=lambda p: p.name, reverse=True)
        for old in versions[keep:]:
            shutil.rmtree(old)
            deleted.append(old)
    return deleted


def champion(metrics: pd.DataFrame) -> str:
    """The model with the lowest mean RMSPE over its folds (backtest_* and validation)."""
    m = metrics.loc[(metrics["metric"] == "rmspe") & metrics["split"].str.match(r"^(backtest_\d+|validation)$")]
    return str(m.groupby("model")["value"].mean().sort_values(kind="stable").index[0])
