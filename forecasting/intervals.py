"""Split-conformal prediction intervals on log residuals, with the level as a parameter.

For the rows of a fold, ``|log(actual / forecast)|`` on open days with sales > 0 is the nonconformity score.  Its
``level`` quantile ``q`` per horizon week (days 0-6, 7-13, ... after the fold's cut) gives the interval
``[forecast / e^q, forecast * e^q]``.  A fold's interval is calibrated on the residuals of the *other* folds only
(for ``validation``: the earlier backtests too), the plan forecast's on all folds -- never on the period being
forecast.  (Symmetric scores track the level more closely across the real-data folds than separate lower and
upper quantiles, which shift with each fold's bias.)

A blend's rows carry ``member_spread`` (:data:`SPREAD`), how far its members disagree, and its scores are
normalised by it: score / (floor + spread), the floor being four times the median spread of the calibration rows,
and the interval ``q * (floor + spread)`` wide in logs.  Where the members disagree -- holiday weeks,
reopenings -- the error is larger too, so the interval widens there and narrows elsewhere: on the real data the
fixed width covered a hard fold (Easter) 75% and an easy one 83%, the scaled one 78-81% and 80-82% on three runs
(bench/README.md, "Intervals that widen where the members disagree").  Such factors keep ``spread_floor``; their
``lower/upper_factor`` are per unit of ``floor + spread``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

DEFAULT_FACTOR = (0.75, 1.25)  # only when no usable residuals exist at all
SPREAD = "member_spread"  # a blend's rows: the weighted standard deviation of its members' log forecasts
SPREAD_FLOOR = "spread_floor"
# The floor in medians of the calibration rows' spread.  Smaller floors lean harder on the spread, which moves with
# each run's small member weights (a baseline weighing 0.01-0.03 on one fold): at 2 medians one of three real-data
# runs covered the Easter fold 84%; at 4 all three kept every fold within 0.777-0.816 (bench/README.md)
FLOOR_MEDIANS = 4.0


def scorable(pred: pd.DataFrame) -> np.ndarray:
    """Rows whose error can be scored in logs: open days with actual and forecast sales > 0."""
    a, p = pred["sales"].to_numpy(float), pred["sales_pred"].to_numpy(float)
    return pred["is_open"].to_numpy(bool) & np.isfinite(a) & np.isfinite(p) & (a > 0) & (p > 0)


def member_spread(log_preds: list[np.ndarray], weights: list[float]) -> np.ndarray:
    """Per row, the standard deviation of the members' log forecasts under their blend weights (normalised; a member
    of weight 0 does not count); 0 where a weighed member has no positive forecast (closed days)."""
    w = np.asarray(weights, dtype=float)
    if not len(w) or w.sum() <= 0:
        return np.zeros(len(log_preds[0]) if log_preds else 0)
    w = w / w.sum()
    logs = np.column_stack(log_preds)
    valid = np.isfinite(logs[:, w > 0]).all(axis=1)
    logs = np.where(np.isfinite(logs), logs, 0.0)
    mean = logs @ w
    return np.where(valid, np.sqrt(((logs - mean[:, None]) ** 2) @ w), 0.0)


def conformal_factors(pred: pd.DataFrame, level: float, n_weeks: int) -> pd.DataFrame:
    """Per horizon-week multiplicative factors from backtest rows: horizon_week, lower_factor (<= 1),
    upper_factor (>= 1), n (residuals behind it), and spread_floor where the rows carry ``member_spread``.
    Weeks without residuals use the pooled quantile."""
    ok = scorable(pred)
    score = np.abs(np.log(pred["sales"].to_numpy(float)[ok] / pred["sales_pred"].to_numpy(float)[ok]))
    floor = None
    if SPREAD in pred.columns and ok.any():
        spread = pred[SPREAD].to_numpy(float)[ok]
        floor = FLOOR_MEDIANS * float(np.median(spread))
        if np.isfinite(floor) and floor > 0:  # a one-member blend has no spread: unscaled scores
            score = score / (floor + spread)
        else:
            floor = None
    res = pd.DataFrame({"horizon_week": pred["horizon_day"].to_numpy()[ok] // 7, "score": score})
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
    if floor is not None:
        out[SPREAD_FLOOR] = floor
    return out


def apply_factors(sales_pred, horizon_day, factors: pd.DataFrame, spread=None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) for forecasts at the given horizon days (weeks beyond the table use the last week);
    ``spread``: the members' spread of each forecast, required by factors that carry ``spread_floor``."""
    week = np.clip(np.asarray(horizon_day, dtype=int) // 7, 0, len(factors) - 1)
    s = np.asarray(sales_pred, dtype=float)
    if SPREAD_FLOOR not in factors.columns:
        return s * factors["lower_factor"].to_numpy()[week], s * factors["upper_factor"].to_numpy()[week]
    if spread is None:
        raise ValueError("these interval factors scale with the blend members' spread: pass member_spread")
    half_width = (np.log(factors["upper_factor"].to_numpy())[week]
                  * (float(factors[SPREAD_FLOOR].iloc[0]) + np.nan_to_num(np.asarray(spread, dtype=float))))
    return s * np.exp(-half_width), s * np.exp(half_width)


def add_fold_intervals(pred: pd.DataFrame, level: float, n_weeks: int) -> pd.DataFrame:
    """Copy of a backtest frame with sales_lower / sales_upper, each fold calibrated on the others."""
    out = pred.copy()
    lo, hi = np.zeros(len(out)), np.zeros(len(out))
    splits = list(dict.fromkeys(out["split"]))
    for split in splits:
        rows = (out["split"] == split).to_numpy()
        others = out.loc[~rows] if len(splits) > 1 else out.iloc[0:0]
        factors = conformal_factors(others, level, n_weeks)
        spread = out.loc[rows, SPREAD] if SPREAD in out.columns else None
        lo[rows], hi[rows] = apply_factors(out.loc[rows, "sales_pred"], out.loc[rows, "horizon_day"], factors, spread)
    out["sales_lower"], out["sales_upper"] = lo, hi
    return out
