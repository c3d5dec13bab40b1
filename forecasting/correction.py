"""A per-store level correction fitted on earlier folds only.

A store's forecast error on one fold carries over to the next (bench/README.md, "Error analysis", finding 3): the
models learn a store's level from a year of history and lag where it is now.  The correction multiplies a store's
forecast by ``exp(-slope * bias)``: ``bias`` is the store's mean ``log(forecast / actual)`` on the latest fold before
the forecast, ``slope`` how much of a store's bias carried over from one fold to the next on the earlier folds (the
least-squares slope over the stores, pooled over consecutive fold pairs, clipped to [0, 1]).  A model whose store
biases do not persist gets a slope near 0 and is left as it is.

Fold *k* is corrected with the biases of fold *k - 1* and a slope fitted on the folds before it (it takes two), so
with three folds only ``validation`` is corrected in the backtest; the plan's correction is fitted on all folds.
Every correction is fitted on the model's uncorrected fold forecasts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from forecasting.intervals import scorable
from forecasting.metrics import rmspe

MIN_BIAS_DAYS = 7  # a store with fewer scorable days on the fold keeps its forecast


@dataclass(frozen=True)
class StoreBiasCorrection:
    slope: float
    store_bias: dict[int, float] = field(repr=False)  # store_id -> mean log(forecast / actual) on the latest fold

    def factors(self, store_id) -> np.ndarray:
        """The multiplier of each forecast row's store (1 for stores without a bias)."""
        bias = pd.Series(self.store_bias, dtype=float).reindex(np.asarray(store_id, dtype="int64"))
        return np.exp(-self.slope * bias.fillna(0.0).to_numpy())

    def to_meta(self) -> dict:
        return {"slope": self.slope, "store_bias": {str(k): v for k, v in self.store_bias.items()}}

    @classmethod
    def from_meta(cls, meta: dict) -> StoreBiasCorrection | None:
        """The correction recorded in a version's ``meta.json`` (None for versions trained without one)."""
        saved = meta.get("store_correction")
        if not saved:
            return None
        return cls(float(saved["slope"]), {int(k): float(v) for k, v in saved["store_bias"].items()})


def store_bias(rows: pd.DataFrame) -> pd.Series:
    """store_id -> mean log(forecast / actual) over the rows' scorable days (stores with enough of them)."""
    ok = scorable(rows)
    log_ratio = np.log(rows["sales_pred"].to_numpy(float)[ok] / rows["sales"].to_numpy(float)[ok])
    g = pd.Series(log_ratio).groupby(rows["store_id"].to_numpy()[ok])
    stats = pd.DataFrame({"bias": g.mean(), "n": g.size()})
    return stats.loc[stats["n"] >= MIN_BIAS_DAYS, "bias"]


def persistence_slope(biases: list[pd.Series]) -> float:
    """How much of a store's bias carries over to the next fold: the least-squares slope of fold k + 1's store
    biases on fold k's (each pair centred), pooled over the consecutive pairs, clipped to [0, 1]."""
    cov = var = 0.0
    for earlier, later in zip(biases, biases[1:]):
        x, y = earlier.align(later, join="inner")
        if len(x) < 2:
            continue
        x, y = x - x.mean(), y - y.mean()
        cov, var = cov + float((x * y).sum()), var + float((x * x).sum())
    return float(np.clip(cov / var, 0.0, 1.0)) if var > 0 else 0.0


def _correction(biases: list[pd.Series]) -> StoreBiasCorrection:
    """The correction after the last of ``biases`` (the store biases of consecutive folds, oldest first, >= 2)."""
    return StoreBiasCorrection(persistence_slope(biases), {int(k): float(v) for k, v in biases[-1].items()})


@dataclass(frozen=True)
class CorrectedBacktest:
    predictions: pd.DataFrame  # the backtest frame, each fold from the third on corrected from the folds before it
    effects: dict[str, dict]  # corrected fold -> slope, rmspe_uncorrected, rmspe
    plan: StoreBiasCorrection | None  # the correction after the last fold (None with fewer than two folds)


def correct_backtest(pred: pd.DataFrame) -> CorrectedBacktest:
    """The uncorrected backtest frame ``pred`` corrected fold by fold (the first two folds stay as they are), what
    that did to each fold's RMSPE, and the plan's correction fitted on all folds."""
    out = pred.copy()
    splits = list(dict.fromkeys(pred["split"]))
    biases = [store_bias(pred.loc[pred["split"] == s]) for s in splits]
    effects = {}
    for k in range(2, len(splits)):
        correction = _correction(biases[:k])
        rows = (pred["split"] == splits[k]).to_numpy()
        before = pred.loc[rows]
        out.loc[rows, "sales_pred"] = before["sales_pred"].to_numpy(float) * correction.factors(before["store_id"])
        after = out.loc[rows]
        effects[splits[k]] = {"slope": correction.slope,
                              "rmspe_uncorrected": rmspe(before["sales"], before["sales_pred"], before["is_open"]),
                              "rmspe": rmspe(after["sales"], after["sales_pred"], after["is_open"])}
    return CorrectedBacktest(out, effects, _correction(biases) if len(biases) >= 2 else None)
