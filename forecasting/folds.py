"""The forecast layout: rolling-origin folds, horizon and interval level.

``n_folds`` consecutive windows of ``horizon_days`` days at the end of the history.  Fold *k* trains on the
history up to and including its cut-off and forecasts the next ``horizon_days`` days with the plan covariates
(open, promo, holidays, calendar) known and the actuals unseen.  The last fold is the last ``horizon_days`` days
of history and is called ``validation``; the earlier ones ``backtest_1`` (oldest), ``backtest_2``, ...
dbt computes the store statistics at the same cuts (``intermediate.int_feature_cuts``): the orchestration layer
passes :meth:`ForecastSpec.dbt_vars` to dbt, so both sides read one :class:`ForecastSpec`.

The folds do not count alike when models are compared: :meth:`ForecastSpec.recency_weights` halves a fold's weight
every ``champion_half_life_folds`` folds back from the latest, because the latest folds resemble the forecast
after them best (bench/README.md, "Champion rule").  dbt's ``marts.dim_model_versions`` ranks the champion by
that weighted mean RMSPE (var ``champion_half_life_folds``) and the blend fits its weights with the same weights.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd

log = logging.getLogger(__name__)

VALIDATION = "validation"
MIN_TRAIN_DAYS = 56


@dataclass(frozen=True)
class ForecastSpec:
    """Folds, horizon, the prediction interval's level (0.8 = 80%) and how fast older folds lose weight."""

    n_folds: int = 3
    horizon_days: int = 42
    interval: float = 0.8
    champion_half_life_folds: float = 1.0
    store_correction: bool = True  # forecasting.correction: per-store level correction fitted on earlier folds

    def __post_init__(self):
        if (self.n_folds < 1 or self.horizon_days < 1 or not 0 < self.interval < 1
                or not self.champion_half_life_folds > 0):
            raise ValueError(f"invalid forecast layout {self}: n_folds >= 1, horizon_days >= 1, 0 < interval < 1, "
                             "champion_half_life_folds > 0")

    def layout(self) -> dict:
        """What a trained version's forecasts depend on besides its parameters (see forecasting.retraining)."""
        return {"horizon_days": self.horizon_days, "interval": self.interval}

    @property
    def coverage_metric(self) -> str:
        """The metric name of the interval's empirical coverage, e.g. ``coverage_80``."""
        return f"coverage_{round(self.interval * 100)}"

    @property
    def horizon_weeks(self) -> int:
        return math.ceil(self.horizon_days / 7)

    def recency_weights(self, splits: Sequence[str]) -> dict[str, float]:
        """Weight of each fold of ``splits`` (oldest first, the latest last): 0.5 ** (age / half-life), age 0 for
        the latest.  dim_model_versions.sql computes the same weights for the champion's ``weighted_rmspe``."""
        n = len(splits)
        return {split: 0.5 ** ((n - 1 - i) / self.champion_half_life_folds) for i, split in enumerate(splits)}

    def dbt_vars(self) -> dict[str, int | float]:
        """The dbt vars that must match the training folds and the blend (dbt_project.yml documents them)."""
        return {"backtest_folds": self.n_folds, "backtest_horizon_days": self.horizon_days,
                "assumed_horizon_days": self.horizon_days, "champion_half_life_folds": self.champion_half_life_folds}


@dataclass(frozen=True)
class Fold:
    split: str
    cutoff: pd.Timestamp  # last training date
    end: pd.Timestamp  # last forecast date (start = cutoff + 1 day)

    @property
    def start(self) -> pd.Timestamp:
        return self.cutoff + pd.Timedelta(days=1)


def make_folds(history: pd.DataFrame, n_folds: int = ForecastSpec.n_folds, horizon_days: int = ForecastSpec.horizon_days,
               min_train_days: int = MIN_TRAIN_DAYS) -> list[Fold]:
    """The rolling-origin folds, oldest first; the last one is ``validation`` (last ``horizon_days`` days).

    Folds whose training part would be shorter than ``min_train_days`` are dropped (short histories get
    fewer folds, never a different fold definition).  Raises when not even the validation fold fits.
    """
    hist = history.loc[history["is_history"]] if "is_history" in history.columns else history
    first, last = pd.Timestamp(hist["sale_date"].min()), pd.Timestamp(hist["sale_date"].max())
    folds = []
    for k in range(n_folds):
        end = last - pd.Timedelta(days=horizon_days * (n_folds - 1 - k))
        cutoff = end - pd.Timedelta(days=horizon_days)
        if (cutoff - first).days + 1 < min_train_days:
            continue
        folds.append((end, cutoff))
    n_days = (last - first).days + 1
    if not folds:
        raise ValueError(f"history of {n_days} days ({first:%Y-%m-%d}..{last:%Y-%m-%d}) is too short: at least "
                         f"{min_train_days + horizon_days} days are needed ({min_train_days} training days before "
                         f"a {horizon_days}-day validation fold)")
    if len(folds) < n_folds:
        log.warning("history of %d days: %d of %d folds (each fold needs %d training days before it; %d days give "
                    "all %d)", n_days, len(folds), n_folds, min_train_days, min_train_days + n_folds * horizon_days,
                    n_folds)
    n = len(folds)
    return [Fold(VALIDATION if i == n - 1 else f"backtest_{i + 1}", cutoff, end)
            for i, (end, cutoff) in enumerate(folds)]


def fold_frames(hist: pd.DataFrame, fold: Fold) -> tuple[pd.DataFrame, pd.DataFrame]:
    d = hist["sale_date"]
    train = hist.loc[d <= fold.cutoff].reset_index(drop=True)
    target = hist.loc[(d > fold.cutoff) & (d <= fold.end)].reset_index(drop=True)
    return train, target

