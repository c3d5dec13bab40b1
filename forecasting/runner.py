"""The training runner: small stages from a feature frame to a packaged result that one writer persists.

    backtest   per fold (forecasting.folds): fit on the data before the cut, forecast the fold's days
    correct    the per-store level correction fitted on earlier folds (forecasting.correction)
    calibrate  conformal intervals at the spec's level (forecasting.intervals) and fold metrics
    refit      the final model on all history (warm-started from the validation fold's model where supported)
    forecast   the plan rows, corrected and with the intervals calibrated on all folds
    package    the forecast, metric and registry rows and the artifact's metadata (TrainingResult)

:func:`train` runs them in order; :func:`forecasting.artifacts.save_result` writes the result's artifact folder.
``ml.model_metrics`` gets one row per fold and metric (rmspe, rmse, mae, mape and the coverage named after the
interval level, e.g. coverage_80); ``split`` is the fold name.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

import numpy as np
import pandas as pd

from forecasting.artifacts import new_model_version
from forecasting.correction import StoreBiasCorrection, correct_backtest
from forecasting.features import StoreStats, history_rows, plan_rows, prepare_frame
from forecasting.folds import VALIDATION, Fold, ForecastSpec, fold_frames, make_folds
from forecasting.intervals import add_fold_intervals, apply_factors, conformal_factors
from forecasting.metrics import fold_metrics, mean_rmspe, rmspe
from forecasting.protocol import BaseForecaster

log = logging.getLogger(__name__)

FORECAST_COLUMNS = ["store_id", "forecast_date", "model", "model_version", "origin_date", "sales_pred",
                    "sales_lower", "sales_upper", "customers_pred"]
METRIC_COLUMNS = ["model", "model_version", "split", "metric", "value"]
REGISTRY_COLUMNS = ["model", "model_version", "trained_at", "train_start", "train_end", "n_train_rows", "params",
                    "artifact_path"]
FOLD_COLUMNS = ["split", "store_id", "sale_date", "horizon_day", "is_open", "sales", "customers", "sales_pred",
                "customers_pred"]


@dataclass
class Backtest:
    folds: list[Fold]
    predictions: pd.DataFrame  # FOLD_COLUMNS
    last_fitted: Any = field(repr=False)  # the validation fold's model
    timings: dict = field(default_factory=dict)  # split -> {"fit_s", "predict_s"}


@dataclass
class Calibration:
    backtest: pd.DataFrame  # FOLD_COLUMNS + sales_lower, sales_upper (each fold calibrated on the others)
    metrics: pd.DataFrame  # split, metric, value
    factors: pd.DataFrame  # the plan's interval factors (all folds)


@dataclass
class TrainingResult:
    """What one training produced: ``forecast`` / ``metrics`` / ``registry`` in the ml tables' columns (the
    registry's params as a dict and artifact_path set by the writer), the fold rows, the artifact's metadata and
    the fitted final model (``forecaster``; its ``save`` writes the artifact)."""

    model: str
    model_version: str
    forecast: pd.DataFrame
    metrics: pd.DataFrame
    registry: dict
    backtest: pd.DataFrame
    meta: dict
    forecaster: Any = field(default=None, repr=False)
    validation_forecaster: Any = field(default=None, repr=False)
    validation_fold: Fold | None = None  # the fold validation_forecaster was fitted for

    @property
    def validation(self) -> pd.DataFrame:
        return self.backtest.loc[self.backtest["split"] == VALIDATION].reset_index(drop=True)

    def registry_frame(self) -> pd.DataFrame:
        """One row in ml.model_registry's column order, params as JSON text."""
        row = {**self.registry, "params": json.dumps(jsonable(self.registry["params"]), sort_keys=True)}
        return pd.DataFrame([row])[REGISTRY_COLUMNS]


def jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.integer):
        return int(obj)
    if isinstance(obj, np.floating):
        return float(obj)
    if hasattr(obj, "isoformat"):
        return obj.isoformat()
    return obj


def run_backtest(forecaster: BaseForecaster, hist: pd.DataFrame, folds: list[Fold],
                 store_stats: pd.DataFrame | None) -> Backtest:
    """Fit and forecast every fold; a forecaster with ``warm_start_folds`` continues from the previous fold's
    model (which saw only data before the previous cut, so nothing of the forecast window leaks in)."""
    fitted, parts, timings = None, [], {}
    for fold in folds:
        train, target = fold_frames(hist, fold)
        t = time.perf_counter()
        if forecaster.warm_start_folds and fitted is not None:
            fitted = fitted.refit(train, refit_epochs=fitted.params.get("fold_refit_epochs", 1))
        else:
            stats = None if store_stats is None else StoreStats.from_table(store_stats, fold.start)
            fitted = type(forecaster)(forecaster.params).fit(train, stats)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        pred = fitted.predict(train, target)
        timings[fold.split] = {"fit_s": fit_s, "predict_s": time.perf_counter() - t}
        parts.append(pd.DataFrame({
            "split": fold.split,
            "store_id": target["store_id"].to_numpy(),
            "sale_date": pd.to_datetime(target["sale_date"]).to_numpy(),
            "horizon_day": (pd.to_datetime(target["sale_date"]) - fold.start).dt.days.to_numpy(),
            "is_open": target["is_open"].to_numpy(bool),
            "sales": target["sales"].to_numpy(float),
            "customers": target["customers"].to_numpy(float),
            "sales_pred": pred["sales_pred"].to_numpy(float),
            "customers_pred": pred["customers_pred"].to_numpy(float),
        }))
        log.info("%s %s (train ..%s, forecast %s..%s): rmspe=%.4f fit %.1fs predict %.1fs", forecaster.name,
                 fold.split, f"{fold.cutoff:%Y-%m-%d}", f"{fold.start:%Y-%m-%d}", f"{fold.end:%Y-%m-%d}",
                 rmspe(parts[-1]["sales"], parts[-1]["sales_pred"], parts[-1]["is_open"]), fit_s,
                 timings[fold.split]["predict_s"])
    return Backtest(folds, pd.concat(parts, ignore_index=True), fitted, timings)


def calibrate(predictions: pd.DataFrame, spec: ForecastSpec) -> Calibration:
    backtest = add_fold_intervals(predictions, spec.interval, spec.horizon_weeks)
    return Calibration(backtest=backtest, metrics=fold_metrics(backtest, spec.coverage_metric),
                       factors=conformal_factors(backtest, spec.interval, spec.horizon_weeks))


def refit(forecaster: BaseForecaster, backtest: Backtest, hist: pd.DataFrame,
          store_stats: pd.DataFrame | None) -> BaseForecaster:
    """The final model on all history: warm-started from the validation fold's model where supported, else
    fitted afresh with the store statistics of the forecast cut (the day after the history)."""
    if forecaster.supports_refit:
        return backtest.last_fitted.refit(hist)
    plan_start = pd.Timestamp(hist["sale_date"].max()) + pd.Timedelta(days=1)
    stats = None if store_stats is None else StoreStats.from_table(store_stats, plan_start)
    return type(forecaster)(forecaster.params).fit(hist, stats)


def forecast_plan(final: BaseForecaster, hist: pd.DataFrame, plan: pd.DataFrame, factors: pd.DataFrame,
                  correction: StoreBiasCorrection | None = None) -> pd.DataFrame:
    """The plan's forecast with intervals: store_id, forecast_date, origin_date, sales_pred/lower/upper,
    customers_pred."""
    if plan.empty:
        log.warning("%s: no plan rows, the forecast is empty", final.name)
    pred = final.predict(hist, plan)
    plan_start = pd.Timestamp(hist["sale_date"].max()) + pd.Timedelta(days=1)
    return interval_forecast(pred["store_id"], pred["sale_date"], pred["sales_pred"], pred["customers_pred"],
                             plan_start, factors, correction)


def interval_forecast(store_id, forecast_date, sales_pred, customers_pred, plan_start: pd.Timestamp,
                      factors: pd.DataFrame, correction: StoreBiasCorrection | None = None,
                      spread=None) -> pd.DataFrame:
    """Forecast rows, the store correction (if any) applied to the sales, with the interval factors of their horizon
    week (lower <= forecast <= upper) -- scaled by the blend members' ``spread`` where the factors ask for it;
    ``origin_date`` = ``plan_start``, the first day the forecast covers (the day after its history)."""
    dates = pd.to_datetime(pd.Series(np.asarray(forecast_date))).dt.normalize()
    sales = np.asarray(sales_pred, dtype=float)
    if correction is not None:
        sales = sales * correction.factors(store_id)
    lo, hi = apply_factors(sales, (dates - plan_start).dt.days.to_numpy(), factors, spread)
    return pd.DataFrame({
        "store_id": np.asarray(store_id).astype("int32"),
        "forecast_date": dates.to_numpy(),
        "origin_date": plan_start.normalize(),
        "sales_pred": sales,
        "sales_lower": np.minimum(lo, sales),
        "sales_upper": np.maximum(hi, sales),
        "customers_pred": np.asarray(customers_pred, dtype=float),
    })


def package(name: str, params: dict, forecast: pd.DataFrame, calibration: Calibration, *, train_start,
            train_end, n_train_rows: int, meta: dict, spec: ForecastSpec) -> TrainingResult:
    """Stamp a new version on the forecast and metric rows and assemble the registry row and artifact metadata."""
    version = new_model_version()
    forecast = forecast.assign(model=name, model_version=version)[FORECAST_COLUMNS]
    metrics = calibration.metrics.assign(model=name, model_version=version)[METRIC_COLUMNS]
    registry = {"model": name, "model_version": version, "trained_at": datetime.now(timezone.utc).replace(tzinfo=None),
                "train_start": pd.Timestamp(train_start).date(), "train_end": pd.Timestamp(train_end).date(),
                "n_train_rows": int(n_train_rows), "params": jsonable(params), "artifact_path": None}
    by_fold = calibration.metrics.pivot(index="split", columns="metric", values="value")
    meta = {**jsonable({k: v for k, v in registry.items() if k != "artifact_path"}), **jsonable(meta),
            "horizon_days": spec.horizon_days, "interval": spec.interval,
            "fold_metrics": jsonable(by_fold.to_dict(orient="index")),
            "mean_backtest_rmspe": mean_rmspe(calibration.metrics),
            "interval_factors": jsonable(calibration.factors.to_dict(orient="list"))}
    return TrainingResult(model=name, model_version=version, forecast=forecast, metrics=metrics, registry=registry,
                          backtest=calibration.backtest, meta=meta)


def train(forecaster: BaseForecaster, frame: pd.DataFrame, store_stats: pd.DataFrame | None,
          spec: ForecastSpec = ForecastSpec()) -> TrainingResult:
    """Backtest, calibrate, refit, forecast and package ``forecaster`` on a feature frame (history and plan rows
    of ``marts.fct_store_daily_features``); ``store_stats`` = ``marts.agg_store_sales_stats`` at every cut
    (models that need none may get None)."""
    t_all = time.perf_counter()
    df = prepare_frame(frame)
    hist, plan = history_rows(df), plan_rows(df)
    del df  # a whole copy of the mart: the fits below need the memory (the random forest peaks near 6 GiB)
    if hist.empty:
        raise ValueError("train: the frame has no history rows")
    folds = make_folds(hist, spec.n_folds, spec.horizon_days)
    log.info("%s: %d stores, history %s..%s (%d rows), %d folds of %d days, plan %d rows", forecaster.name,
             hist["store_id"].nunique(), f"{hist['sale_date'].min():%Y-%m-%d}", f"{hist['sale_date'].max():%Y-%m-%d}",
             len(hist), len(folds), spec.horizon_days, len(plan))
    backtest = run_backtest(forecaster, hist, folds, store_stats)
    if spec.store_correction:
        corrected = correct_backtest(backtest.predictions)
        predictions, correction_effect, correction = corrected.predictions, corrected.effects, corrected.plan
    else:
        predictions, correction_effect, correction = backtest.predictions, {}, None
    for split, effect in correction_effect.items():
        log.info("%s %s: store correction (slope %.2f) rmspe %.4f -> %.4f", forecaster.name, split, effect["slope"],
                 effect["rmspe_uncorrected"], effect["rmspe"])
    if correction is not None:
        log.info("%s: the plan's store correction slope is %.2f", forecaster.name, correction.slope)
    calibration = calibrate(predictions, spec)
    t = time.perf_counter()
    final = refit(forecaster, backtest, hist, store_stats)
    fit_full_s = time.perf_counter() - t
    t = time.perf_counter()
    forecast = forecast_plan(final, hist, plan, calibration.factors, correction)
    predict_plan_s = time.perf_counter() - t
    valid = calibration.backtest.loc[calibration.backtest["split"] == VALIDATION]
    meta = {
        "folds": [{"split": f.split, "train_end": f"{f.cutoff:%Y-%m-%d}", "start": f"{f.start:%Y-%m-%d}",
                   "end": f"{f.end:%Y-%m-%d}", **{k: round(v, 3) for k, v in backtest.timings[f.split].items()}}
                  for f in folds],
        "validation_start": f"{folds[-1].start:%Y-%m-%d}", "validation_end": f"{folds[-1].end:%Y-%m-%d}",
        "customers_rmspe": rmspe(valid["customers"], valid["customers_pred"], valid["is_open"]),
        "plan_rows": int(len(plan)),
        "store_correction": None if correction is None else correction.to_meta(),
        "store_correction_effect": correction_effect,
        "timings_s": {"fit_backtests": round(sum(t["fit_s"] for t in backtest.timings.values()), 3),
                      "fit_full": round(fit_full_s, 3), "predict_plan": round(predict_plan_s, 3),
                      "total": round(time.perf_counter() - t_all, 3)},
    }
    result = package(forecaster.name, forecaster.params, forecast, calibration, train_start=hist["sale_date"].min(),
                     train_end=hist["sale_date"].max(), n_train_rows=len(hist), meta=meta, spec=spec)
    result.forecaster, result.validation_forecaster, result.validation_fold = final, backtest.last_fitted, folds[-1]
    m = calibration.metrics.loc[calibration.metrics["split"] == VALIDATION].set_index("metric")["value"]
    log.info("%s: validation rmspe=%.4f %s=%.3f, mean rmspe over folds %.4f (%.0fs)", forecaster.name, m["rmspe"],
             spec.coverage_metric, m[spec.coverage_metric], mean_rmspe(calibration.metrics), time.perf_counter() - t_all)
    return result
