"""Split-conformal prediction intervals on log residuals, with the level as a parameter.

For the rows of a fold, ``|log(actual / forecast)|`` on open days with sales > 0 is the nonconformity score.  Its
``level`` quantile ``q`` per horizon week (days 0-6, 7-13, ... after the fold's cut) gives the interval
``[forecast / e^q, forecast * e^q]``.  A fold's interval is calibrated on the residuals of the *other* folds only
(for ``validation``: the earlier backtests too), the plan forecast's on all folds -- never on the period being
forecast.  (Symmetric scores track the level more closely across the real-data folds than separate lower and
upper quantiles, which shift with each fold's bias.)
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_FACTOR = (0.75, 1.25)  # only when no usable residuals exist at all


def scorable(pred: pd.DataFrame) -> np.ndarray:
    """Rows whose error can be scored in logs: open days with actual and forecast sales > 0."""
    a, p = pred["sales"].to_numpy(float), pred["sales_pred"].to_numpy(float)
    return pred["is_open"].to_numpy(bool) & np.isfinite(a) & np.isfinite(p) & (a > 0) & (p > 0)


def conformal_factors(pred: pd.DataFrame, level: float, n_weeks: int) -> pd.DataFrame:
    """Per horizon-week multiplicative factors from backtest rows: horizon_week, lower_factor (<= 1),
    upper_factor (>= 1), n (residuals behind it).  Weeks without residuals use the pooled quantile."""
    ok = scorable(pred)
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
    q = pd.DataFrame({"q": g.quantile(level), "n": g.size()}).reindex(out["horizon_week"])
    q["q"] = q["q"].fillna(res["score"].quantile(level))
    out["lower_factor"] = np.exp(-q["q"].to_numpy())
    out["upper_factor"] = np.exp(q["q"].to_numpy())
    out["n"] = q["n"].fillna(0).astype(int).to_numpy()
    return out


def apply_factors(sales_pred, horizon_day, factors: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) for forecasts at the given horizon days (weeks beyond the table use the last week)."""
    week = np.clip(np.asarray(horizon_day, dtype=int) // 7, 0, len(factors) - 1)
    s = np.asarray(sales_pred, dtype=float)
    return s * factors["lower_factor"].to_numpy()[week], s * factors["upper_factor"].to_numpy()[week]


def add_fold_intervals(pred: pd.DataFrame, level: float, n_weeks: int) -> pd.DataFrame:
    """Copy of a backtest frame with sales_lower / sales_upper, each fold calibrated on the others."""
    out = pred.copy()
    lo, hi = np.zeros(len(out)), np.zeros(len(out))
    splits = list(dict.fromkeys(out["split"]))
    for split in splits:
        rows = (out["split"] == split).to_numpy()
        others = out.loc[~rows] if len(splits) > 1 else out.iloc[0:0]
        factors = conformal_factors(others, level, n_weeks)
        lo[rows], hi[rows] = apply_factors(out.loc[rows, "sales_pred"], out.loc[rows, "horizon_day"], factors)
    out["sales_lower"], out["sales_upper"] = lo, hi
    return out
