"""Train a model, validate it on the last weeks of history, forecast the plan and save the artifacts.

:func:`train_and_forecast` is the single entry point the orchestration layer calls::

    history --split--> train | validation (last ``horizon_days`` days)
    fit(train) -> predict(validation) -> metrics + 80% interval calibration (validation residuals)
    refit(all history) -> predict(plan rows) -> forecast with intervals
    save  models_dir/<model>/<version>/{model artifact, forecast.parquet, metrics.parquet, meta.json}

Intervals: per horizon week k (days 0-6, 7-13, ... after the window start) the 10% / 90% quantiles of
log(actual / predicted) on validation open days give multiplicative factors exp(q10) <= 1 <= exp(q90), so
``sales_lower <= sales_pred <= sales_upper`` always; closed days are 0 / 0 / 0.  The factors are estimated on
the validation window with the train-only model, then applied to the refitted model's plan forecast.
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

from forecasting.evaluation import METRICS, interval_coverage, metrics_frame, rmspe
from forecasting.features import history_rows, plan_rows, prepare_frame, validation_split
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
DEFAULT_FACTOR = (0.75, 1.25)  # only when validation gives no usable residuals at all


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
    ``metrics``: model, model_version, split ('validation'), metric, value.
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


def calibrate_intervals(
    actual: pd.DataFrame, predicted: pd.DataFrame, start: pd.Timestamp, interval: float = DEFAULT_INTERVAL
) -> pd.DataFrame:
    """Per horizon-week multiplicative interval factors from validation residuals.

    ``actual`` has sale_date, sales, is_open; ``predicted`` the matching rows' sales_pred (same order).
    Returns columns horizon_week, lower_factor, upper_factor, n (lower_factor <= 1 <= upper_factor).
    """
    a = actual["sales"].to_numpy(float)
    p = predicted["sales_pred"].to_numpy(float)
    ok = actual["is_open"].to_numpy(bool) & (a > 0) & (p > 0) & np.isfinite(a) & np.isfinite(p)
    week = ((pd.to_datetime(actual["sale_date"]) - pd.Timestamp(start)).dt.days // 7).to_numpy()
    alpha = (1.0 - interval) / 2.0
    res = pd.DataFrame({"horizon_week": week[ok], "r": np.log(a[ok] / p[ok])})
    n_weeks = int(week.max()) + 1 if len(week) else 1
    out = pd.DataFrame({"horizon_week": np.arange(max(n_weeks, 1))})
    if res.empty:
        out["lower_factor"], out["upper_factor"], out["n"] = DEFAULT_FACTOR[0], DEFAULT_FACTOR[1], 0
        return out
    g = res.groupby("horizon_week")["r"]
    q = pd.DataFrame({"lo": g.quantile(alpha), "hi": g.quantile(1 - alpha), "n": g.size()})
    q = q.reindex(out["horizon_week"])
    q["lo"] = q["lo"].fillna(res["r"].quantile(alpha))
    q["hi"] = q["hi"].fillna(res["r"].quantile(1 - alpha))
    out["lower_factor"] = np.exp(np.minimum(q["lo"].to_numpy(), 0.0))
    out["upper_factor"] = np.exp(np.maximum(q["hi"].to_numpy(), 0.0))
    out["n"] = q["n"].fillna(0).astype(int).to_numpy()
    return out


def apply_intervals(pred: pd.DataFrame, start: pd.Timestamp, factors: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """sales_lower / sales_upper for prediction rows (weeks beyond the calibrated ones use the last week)."""
    week = ((pd.to_datetime(pred["sale_date"]) - pd.Timestamp(start)).dt.days // 7).to_numpy()
    week = np.clip(week, 0, len(factors) - 1)
    lo = factors["lower_factor"].to_numpy()[week]
    hi = factors["upper_factor"].to_numpy()[week]
    s = pred["sales_pred"].to_numpy(float)
    return s * lo, s * hi


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
) -> TrainedModel:
    """Validate, refit on all history, forecast the plan rows and save artifacts (see module docstring).

    ``frame``: marts.fct_store_daily_features rows (history and plan).  ``params`` override the model's
    DEFAULT_PARAMS.  Returns a :class:`TrainedModel`; artifacts go to ``models_dir/<model>/<version>/``.
    """
    t_all = time.perf_counter()
    module = get_model(model_name)
    p = {**module.DEFAULT_PARAMS, **(params or {})}
    timings: dict[str, float] = {}

    df = prepare_frame(frame)
    hist, plan = history_rows(df), plan_rows(df)
    if hist.empty:
        raise ValueError("train_and_forecast: the frame has no history rows")
    train, valid = validation_split(hist, horizon_days)
    if train.empty or valid.empty:
        raise ValueError(f"train_and_forecast: history too short for a {horizon_days}-day validation window")
    valid_start = pd.Timestamp(valid["sale_date"].min())
    _log(
        model_name,
        f"{hist['store_id'].nunique()} stores; train {train['sale_date'].min():%Y-%m-%d}..{train['sale_date'].max():%Y-%m-%d} "
        f"({len(train):,} rows), validation from {valid_start:%Y-%m-%d} ({len(valid):,} rows), plan {len(plan):,} rows",
    )

    t = time.perf_counter()
    fitted = module.fit(train, p)
    timings["fit_train"] = time.perf_counter() - t
    _log(model_name, f"fit on train {timings['fit_train']:.1f}s")

    t = time.perf_counter()
    vpred = module.predict(fitted, train, valid)
    timings["predict_validation"] = time.perf_counter() - t
    metrics = metrics_frame(valid["sales"], vpred["sales_pred"], valid["is_open"], METRICS, split="validation")
    factors = calibrate_intervals(valid, vpred, valid_start, interval)
    v_lo, v_hi = apply_intervals(vpred, valid_start, factors)
    extra = {
        "customers_rmspe": rmspe(valid["customers"], vpred["customers_pred"], valid["is_open"]),
        "interval_coverage_in_sample": interval_coverage(valid["sales"], v_lo, v_hi, valid["is_open"]),
    }
    m = dict(zip(metrics["metric"], metrics["value"]))
    _log(
        model_name,
        f"validation rmspe={m['rmspe']:.4f} rmse={m['rmse']:.1f} mae={m['mae']:.1f} mape={m['mape']:.4f} "
        f"customers_rmspe={extra['customers_rmspe']:.4f} ({timings['predict_validation']:.1f}s)",
    )

    t = time.perf_counter()
    if hasattr(module, "refit"):
        final = module.refit(fitted, hist, p)
    else:
        final = module.fit(hist, p)
    timings["fit_full"] = time.perf_counter() - t
    _log(model_name, f"refit on all history {timings['fit_full']:.1f}s")

    t = time.perf_counter()
    if plan.empty:
        _log(model_name, "WARNING: no plan rows, the forecast is empty")
    ppred = module.predict(final, hist, plan)
    timings["predict_plan"] = time.perf_counter() - t
    plan_start = pd.Timestamp(plan["sale_date"].min()) if len(plan) else valid_start
    lo, hi = apply_intervals(ppred, plan_start, factors)

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
    metrics.insert(0, "model_version", version_str)
    metrics.insert(0, "model", model_name)
    metrics = metrics[METRIC_COLUMNS]
    validation = valid[["store_id", "sale_date", "is_open", "sales", "customers"]].assign(
        sales_pred=vpred["sales_pred"].to_numpy(),
        sales_lower=v_lo,
        sales_upper=v_hi,
        customers_pred=vpred["customers_pred"].to_numpy(),
    )

    t = time.perf_counter()
    model_path = module.save(final, vdir)
    forecast.to_parquet(vdir / "forecast.parquet", index=False)
    metrics.to_parquet(vdir / "metrics.parquet", index=False)
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
        "validation_start": valid_start.date().isoformat(),
        "validation_end": pd.Timestamp(valid["sale_date"].max()).date().isoformat(),
        "validation_metrics": {**{k: float(v) for k, v in m.items()}, **extra},
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
    )
