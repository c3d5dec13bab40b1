"""Rolling-origin backtests, conformal 80% intervals and the weighted blend.

Folds
    ``n_folds`` consecutive windows of ``horizon_days`` days at the end of the history.  Fold *k* trains on
    the history up to and including its cut-off and forecasts the next ``horizon_days`` days with the plan
    covariates (open, promo, holidays, calendar) known and the actuals unseen.  The last fold is the last
    ``horizon_days`` days of history and is called ``validation``; the earlier ones ``backtest_1`` (oldest),
    ``backtest_2``, ...  Store statistics are dbt's at the fold's cut (``marts.agg_store_sales_stats``, computed
    from the history before the cut); scalers and every other fitted quantity come from the fold's training
    rows only.  A model module with
    ``WARM_START_FOLDS = True`` and a ``refit`` (the LSTM) warm-starts each fold from the previous fold's model:
    that model saw only data before the previous cut, so nothing from the window being forecast leaks in.

Intervals (split conformal on log residuals)
    For the rows of a fold, ``|log(actual / forecast)|`` on open days with sales > 0 is the nonconformity score.
    Its 80% quantile ``q`` per horizon week (days 0-6, 7-13, ... after the fold's cut) gives the interval
    ``[forecast / e^q, forecast * e^q]``.  The interval of a fold is calibrated on the residuals of the *other*
    folds only (for ``validation``: the earlier backtests), the interval of the plan forecast on all folds --
    never on the period being forecast.  (Symmetric scores track 80% more closely across the real-data folds
    than separate 10%/90% quantiles, which shift with each fold's bias.)  ``coverage_80`` is reported per fold.

Blend
    Non-negative weights per member model minimising the RMSPE of ``sum_i w_i * forecast_i`` (a non-negative
    least-squares fit of ``forecast_i / actual`` to 1; the weights need not sum to 1, so they also absorb a
    systematic bias).  As for intervals, a fold's blend uses weights fitted on the other folds only; the plan's
    blend uses weights fitted on all folds.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from forecasting.metrics import METRICS, compute_metrics, interval_coverage
from forecasting.features import StoreStats
from forecasting.folds import VALIDATION, Fold, fold_frames

DEFAULT_INTERVAL = 0.8
DEFAULT_FACTOR = (0.75, 1.25)  # only when no usable residuals exist at all
COVERAGE_METRIC = "coverage_80"
FOLD_COLUMNS = ["split", "store_id", "sale_date", "horizon_day", "is_open", "sales", "customers",
                "sales_pred", "customers_pred"]


@dataclass
class BacktestResult:
    model: str
    folds: list[Fold]
    predictions: pd.DataFrame  # FOLD_COLUMNS
    last_fitted: Any = field(default=None, repr=False)  # the validation fold's model
    timings: dict = field(default_factory=dict)  # split -> {"fit_s", "predict_s"}


def run_backtest(model_name: str, module, hist: pd.DataFrame, params: dict, folds: list[Fold],
                 store_stats: pd.DataFrame | None = None, log=None) -> BacktestResult:
    """Fit and forecast every fold (see module docstring); predictions stacked in fold order.

    ``store_stats``: ``marts.agg_store_sales_stats`` rows (all cuts; None for a model that needs none)."""
    warm = bool(getattr(module, "WARM_START_FOLDS", False)) and hasattr(module, "refit")
    fitted, parts, timings = None, [], {}
    for fold in folds:
        train, target = fold_frames(hist, fold)
        t = time.perf_counter()
        stats = None if store_stats is None else StoreStats.from_table(store_stats, fold.start)
        if warm and fitted is not None:
            fold_params = {**params, "refit_epochs": params.get("fold_refit_epochs", params.get("refit_epochs", 1))}
            fitted = module.refit(fitted, train, fold_params)
        else:
            fitted = module.fit(train, params, stats)
        fit_s = time.perf_counter() - t
        t = time.perf_counter()
        pred = module.predict(fitted, train, target)
        predict_s = time.perf_counter() - t
        timings[fold.split] = {"fit_s": fit_s, "predict_s": predict_s}
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
        if log:
            r = compute_metrics(parts[-1]["sales"], parts[-1]["sales_pred"], parts[-1]["is_open"], ("rmspe",))["rmspe"]
            log(f"{fold.split} (train ..{fold.cutoff:%Y-%m-%d}, forecast {fold.start:%Y-%m-%d}..{fold.end:%Y-%m-%d}): "
                f"rmspe={r:.4f} fit {fit_s:.1f}s predict {predict_s:.1f}s")
    return BacktestResult(model_name, folds, pd.concat(parts, ignore_index=True), fitted, timings)


# ----------------------------------------------------------------------------------------------- intervals
def _usable(pred: pd.DataFrame) -> np.ndarray:
    a, p = pred["sales"].to_numpy(float), pred["sales_pred"].to_numpy(float)
    return pred["is_open"].to_numpy(bool) & np.isfinite(a) & np.isfinite(p) & (a > 0) & (p > 0)


def conformal_factors(pred: pd.DataFrame, interval: float = DEFAULT_INTERVAL, n_weeks: int = 6) -> pd.DataFrame:
    """Per horizon-week multiplicative factors from residual rows (FOLD_COLUMNS frame).

    The nonconformity score is the absolute log residual ``|log(actual / forecast)|``; its ``interval`` quantile
    ``q`` per horizon week gives the symmetric (in log space) interval ``[forecast / e^q, forecast * e^q]``.
    Columns horizon_week, lower_factor (<= 1), upper_factor (>= 1), n.
    """
    ok = _usable(pred)
    res = pd.DataFrame({
        "horizon_week": pred["horizon_day"].to_numpy()[ok] // 7,
        "score": np.abs(np.log(pred["sales"].to_numpy(float)[ok] / pred["sales_pred"].to_numpy(float)[ok])),
    })
    weeks = max(n_weeks, int(res["horizon_week"].max()) + 1 if len(res) else 1)
    out = pd.DataFrame({"horizon_week": np.arange(weeks)})
    if res.empty:
        out["lower_factor"], out["upper_factor"], out["n"] = DEFAULT_FACTOR[0], DEFAULT_FACTOR[1], 0
        return out
    g = res.groupby("horizon_week")["score"]
    q = pd.DataFrame({"q": g.quantile(interval), "n": g.size()}).reindex(out["horizon_week"])
    q["q"] = q["q"].fillna(res["score"].quantile(interval))
    out["lower_factor"] = np.exp(-q["q"].to_numpy())
    out["upper_factor"] = np.exp(q["q"].to_numpy())
    out["n"] = q["n"].fillna(0).astype(int).to_numpy()
    return out


def apply_factors(sales_pred, horizon_day, factors: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) for forecasts at the given horizon days (weeks beyond the table use the last week)."""
    week = np.clip(np.asarray(horizon_day, dtype=int) // 7, 0, len(factors) - 1)
    s = np.asarray(sales_pred, dtype=float)
    return s * factors["lower_factor"].to_numpy()[week], s * factors["upper_factor"].to_numpy()[week]


def add_fold_intervals(pred: pd.DataFrame, interval: float = DEFAULT_INTERVAL) -> pd.DataFrame:
    """Copy of a FOLD_COLUMNS frame with sales_lower / sales_upper, each fold calibrated on the others."""
    out = pred.copy()
    lo, hi = np.zeros(len(out)), np.zeros(len(out))
    splits = list(dict.fromkeys(out["split"]))
    for s in splits:
        rows = (out["split"] == s).to_numpy()
        others = out.loc[~rows] if len(splits) > 1 else out.iloc[0:0]
        f = conformal_factors(others, interval)
        lo[rows], hi[rows] = apply_factors(out.loc[rows, "sales_pred"], out.loc[rows, "horizon_day"], f)
    out["sales_lower"], out["sales_upper"] = lo, hi
    return out


def fold_metrics(pred: pd.DataFrame) -> pd.DataFrame:
    """Long metrics (split, metric, value) per fold: rmspe, rmse, mae, mape and coverage_80 (when intervals)."""
    rows = []
    for s, g in pred.groupby("split", sort=False):
        vals = compute_metrics(g["sales"], g["sales_pred"], g["is_open"], METRICS)
        if "sales_lower" in g.columns:
            vals[COVERAGE_METRIC] = interval_coverage(g["sales"], g["sales_lower"], g["sales_upper"], g["is_open"])
        rows += [{"split": s, "metric": m, "value": float(v)} for m, v in vals.items()]
    return pd.DataFrame(rows, columns=["split", "metric", "value"])


def mean_rmspe(metrics: pd.DataFrame) -> float:
    m = metrics.loc[metrics["metric"] == "rmspe", "value"]
    return float(m.mean()) if len(m) else float("nan")


# ----------------------------------------------------------------------------------------------- blend
def blend_weights(preds: dict[str, pd.DataFrame], rows: np.ndarray | None = None) -> dict[str, float]:
    """NNLS weights minimising RMSPE of the weighted sum of member forecasts (aligned FOLD_COLUMNS frames)."""
    names = list(preds)
    first = preds[names[0]]
    a = first["sales"].to_numpy(float)
    ok = first["is_open"].to_numpy(bool) & np.isfinite(a) & (a > 0)
    if rows is not None:
        ok &= rows
    if not ok.any():
        return {n: 1.0 / len(names) for n in names}
    x = np.column_stack([preds[n]["sales_pred"].to_numpy(float)[ok] / a[ok] for n in names])
    w, _ = nnls(x, np.ones(ok.sum()))
    if not np.isfinite(w).all() or w.sum() <= 0:
        w = np.full(len(names), 1.0 / len(names))
    return {n: float(v) for n, v in zip(names, w)}


def combine(preds: dict[str, pd.DataFrame], weights: dict[str, float], columns=("sales_pred", "customers_pred")):
    """Weighted sum of aligned member predictions: sales with the raw weights, customers with normalised ones."""
    total = sum(weights.values()) or 1.0
    out = {}
    for col in columns:
        norm = 1.0 if col == "sales_pred" else total
        out[col] = sum(weights[n] / norm * np.nan_to_num(preds[n][col].to_numpy(float)) for n in weights)
    return out


def check_aligned(preds: dict[str, pd.DataFrame], keys=("split", "store_id", "sale_date")) -> None:
    names = list(preds)
    ref = preds[names[0]][list(keys)].reset_index(drop=True)
    for n in names[1:]:
        if not ref.equals(preds[n][list(keys)].reset_index(drop=True)):
            raise ValueError(f"blend: backtest rows of {n!r} differ from those of {names[0]!r}")


def blend_backtest(preds: dict[str, pd.DataFrame], interval: float = DEFAULT_INTERVAL) -> tuple[pd.DataFrame, dict]:
    """The blend's fold predictions (each fold's weights fitted on the other folds) and per-fold weights."""
    check_aligned(preds)
    base = next(iter(preds.values()))
    out = base[FOLD_COLUMNS].copy()
    out["sales_pred"], out["customers_pred"] = 0.0, 0.0
    per_fold = {}
    splits = list(dict.fromkeys(base["split"]))
    for s in splits:
        rows = (base["split"] == s).to_numpy()
        w = blend_weights(preds, ~rows) if len(splits) > 1 else {n: 1.0 / len(preds) for n in preds}
        per_fold[s] = w
        c = combine({n: p.loc[rows] for n, p in preds.items()}, w)
        out.loc[rows, "sales_pred"] = c["sales_pred"]
        out.loc[rows, "customers_pred"] = c["customers_pred"]
    return add_fold_intervals(out, interval), per_fold
