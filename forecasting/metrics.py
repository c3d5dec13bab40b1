"""Forecast accuracy metrics (vectorised numpy).

Conventions (the same for every model, so numbers are comparable):
- ``rmspe``: Kaggle's Root Mean Square Percentage Error, sqrt(mean(((y - yhat) / y)^2)) over rows with actual
  y > 0 (and open, when ``is_open`` is given).  Closed days and zero-sales days are ignored.
- ``mape``: mean(|y - yhat| / y) over the same rows as rmspe.
- ``rmse`` / ``mae``: over open days (``is_open``) when given, else over every row with an actual.
Rows whose actual is NaN are always ignored.  An empty selection gives NaN.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

METRICS = ("rmspe", "rmse", "mae", "mape")


def _arrays(y_true, y_pred, is_open=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    yt = np.asarray(y_true, dtype="float64").ravel()
    yp = np.asarray(y_pred, dtype="float64").ravel()
    if yt.shape != yp.shape:
        raise ValueError(f"y_true and y_pred differ in length: {yt.shape} vs {yp.shape}")
    mask = ~np.isnan(yt)
    if is_open is not None:
        op = np.asarray(pd.Series(np.asarray(is_open).ravel()).astype("boolean").fillna(True), dtype=bool)
        if op.shape != yt.shape:
            raise ValueError("is_open differs in length from y_true")
        mask &= op
    return yt, yp, mask


def rmspe(y_true, y_pred, is_open=None) -> float:
    """Kaggle RMSPE over (open) rows with actual > 0."""
    yt, yp, mask = _arrays(y_true, y_pred, is_open)
    mask &= yt > 0
    if not mask.any():
        return float("nan")
    pct = (yt[mask] - yp[mask]) / yt[mask]
    return float(np.sqrt(np.mean(pct * pct)))


def mape(y_true, y_pred, is_open=None) -> float:
    """Mean absolute percentage error over (open) rows with actual > 0."""
    yt, yp, mask = _arrays(y_true, y_pred, is_open)
    mask &= yt > 0
    if not mask.any():
        return float("nan")
    return float(np.mean(np.abs(yt[mask] - yp[mask]) / yt[mask]))


def rmse(y_true, y_pred, is_open=None) -> float:
    """Root mean squared error over open rows (all rows with an actual when is_open is None)."""
    yt, yp, mask = _arrays(y_true, y_pred, is_open)
    if not mask.any():
        return float("nan")
    d = yt[mask] - yp[mask]
    return float(np.sqrt(np.mean(d * d)))


def mae(y_true, y_pred, is_open=None) -> float:
    """Mean absolute error over open rows (all rows with an actual when is_open is None)."""
    yt, yp, mask = _arrays(y_true, y_pred, is_open)
    if not mask.any():
        return float("nan")
    return float(np.mean(np.abs(yt[mask] - yp[mask])))


_FUNCS = {"rmspe": rmspe, "rmse": rmse, "mae": mae, "mape": mape}


def compute_metrics(y_true, y_pred, is_open=None, metrics=METRICS) -> dict[str, float]:
    return {m: _FUNCS[m](y_true, y_pred, is_open) for m in metrics}


def interval_coverage(y_true, lower, upper, is_open=None) -> float:
    """Share of (open) rows with actual > 0 whose actual lies within [lower, upper]."""
    yt, lo, mask = _arrays(y_true, lower, is_open)
    up = np.asarray(upper, dtype="float64").ravel()
    mask &= yt > 0
    if not mask.any():
        return float("nan")
    return float(np.mean((yt[mask] >= lo[mask]) & (yt[mask] <= up[mask])))


def fold_metrics(pred: pd.DataFrame, coverage_metric: str | None = None) -> pd.DataFrame:
    """Long metrics (split, metric, value) per fold of a backtest frame: rmspe, rmse, mae, mape and, when the
    frame has sales_lower / sales_upper, the interval's coverage under the name ``coverage_metric``."""
    rows = []
    for split, g in pred.groupby("split", sort=False):
        values = compute_metrics(g["sales"], g["sales_pred"], g["is_open"], METRICS)
        if coverage_metric and "sales_lower" in g.columns:
            values[coverage_metric] = interval_coverage(g["sales"], g["sales_lower"], g["sales_upper"], g["is_open"])
        rows += [{"split": split, "metric": m, "value": float(v)} for m, v in values.items()]
    return pd.DataFrame(rows, columns=["split", "metric", "value"])


def mean_rmspe(metrics: pd.DataFrame) -> float:
    """Mean RMSPE over the folds of a long metrics frame."""
    m = metrics.loc[metrics["metric"] == "rmspe", "value"]
    return float(m.mean()) if len(m) else float("nan")
