"""The weighted blend of whatever models ran.

Non-negative weights per member minimising the RMSPE of ``sum_i w_i * forecast_i`` (a non-negative least-squares
fit of ``forecast_i / actual`` to 1; the weights need not sum to 1, so they also absorb a systematic bias).  As
for intervals, a fold's blend uses weights fitted on the other folds only; the plan's blend uses weights fitted
on all folds.  Each row counts with its fold's weight (:meth:`ForecastSpec.recency_weights`, the champion rule's:
recent folds count more).  Customers are blended with the weights normalised to sum to 1.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import nnls

from forecasting.folds import ForecastSpec
from forecasting.intervals import SPREAD, add_fold_intervals, conformal_factors, member_spread
from forecasting.runner import FOLD_COLUMNS, Calibration, TrainingResult, interval_forecast, jsonable, package
from forecasting.metrics import fold_metrics

BLEND = "blend"


@dataclass
class BlendWeights:
    """The blend's artifact: its weights (overall and per fold) and members' versions."""

    params: dict

    def save(self, directory: str | Path) -> Path:
        path = Path(directory) / "blend.json"
        path.write_text(json.dumps(jsonable(self.params), indent=2))
        return path


def blend_weights(preds: dict[str, pd.DataFrame], rows: np.ndarray | None = None,
                  recency: Mapping[str, float] | None = None) -> dict[str, float]:
    """NNLS weights minimising the RMSPE of the weighted sum of aligned member backtest frames, each row's squared
    error weighted by its fold's weight in ``recency`` (split -> weight; None: every row alike)."""
    names = list(preds)
    actual = preds[names[0]]["sales"].to_numpy(float)
    ok = preds[names[0]]["is_open"].to_numpy(bool) & np.isfinite(actual) & (actual > 0)
    if rows is not None:
        ok &= rows
    row_weight = (np.ones(len(actual)) if recency is None
                  else preds[names[0]]["split"].map(recency).to_numpy(float))
    ok &= row_weight > 0
    if not ok.any():
        return {n: 1.0 / len(names) for n in names}
    # weighted least squares = ordinary least squares on rows scaled by the square root of their weight
    scale = np.sqrt(row_weight[ok])
    x = np.column_stack([preds[n]["sales_pred"].to_numpy(float)[ok] / actual[ok] * scale for n in names])
    w, _ = nnls(x, scale)
    if not np.isfinite(w).all() or w.sum() <= 0:
        w = np.full(len(names), 1.0 / len(names))
    return {n: float(v) for n, v in zip(names, w)}


def fold_order(backtest: pd.DataFrame) -> list[str]:
    """The folds of a backtest frame, oldest first (by their first day)."""
    return list(backtest.groupby("split", sort=False)["sale_date"].min().sort_values(kind="stable").index)


def combine(preds: dict[str, pd.DataFrame], weights: dict[str, float]) -> dict[str, np.ndarray]:
    """Weighted sum of aligned member predictions: sales with the raw weights, customers with normalised ones,
    and the spread of the members it weighs (``member_spread``) that scales the blend's interval."""
    total = sum(weights.values()) or 1.0
    out = {col: sum(weights[n] / norm * np.nan_to_num(preds[n][col].to_numpy(float)) for n in weights)
           for col, norm in (("sales_pred", 1.0), ("customers_pred", total))}
    with np.errstate(divide="ignore", invalid="ignore"):
        logs = [np.log(np.where(p > 0, p, np.nan)) for p in (preds[n]["sales_pred"].to_numpy(float) for n in weights)]
    out[SPREAD] = member_spread(logs, list(weights.values()))
    return out


def blend_backtest(preds: dict[str, pd.DataFrame], spec: ForecastSpec) -> tuple[pd.DataFrame, dict]:
    """The blend's fold rows with intervals (each fold's weights fitted on the other folds, weighted by
    ``spec.recency_weights``) and those weights."""
    names = list(preds)
    keys = ["split", "store_id", "sale_date"]
    for n in names[1:]:
        if not preds[names[0]][keys].reset_index(drop=True).equals(preds[n][keys].reset_index(drop=True)):
            raise ValueError(f"blend: backtest rows of {n!r} differ from those of {names[0]!r}")
    base = preds[names[0]]
    out = base[FOLD_COLUMNS].copy()
    per_fold = {}
    splits = fold_order(base)
    recency = spec.recency_weights(splits)
    for split in splits:
        rows = (base["split"] == split).to_numpy()
        weights = (blend_weights(preds, ~rows, recency) if len(splits) > 1
                   else {n: 1.0 / len(preds) for n in preds})
        per_fold[split] = weights
        combined = combine({n: p.loc[rows] for n, p in preds.items()}, weights)
        out.loc[rows, "sales_pred"] = combined["sales_pred"]
        out.loc[rows, "customers_pred"] = combined["customers_pred"]
        out.loc[rows, SPREAD] = combined[SPREAD]
    return add_fold_intervals(out, spec.interval, spec.horizon_weeks), per_fold


def fit_blend(members: dict[str, dict], spec: ForecastSpec = ForecastSpec()) -> TrainingResult:
    """The blend of trained models.  ``members``: model name -> {"backtest": its fold rows, "forecast": its plan
    forecast, "registry": its registry row (dict or one-row frame)}."""
    names = sorted(members)
    preds = {n: members[n]["backtest"].reset_index(drop=True) for n in names}
    backtest, per_fold = blend_backtest(preds, spec)
    weights = blend_weights(preds, recency=spec.recency_weights(fold_order(preds[names[0]])))
    calibration = Calibration(backtest=backtest, metrics=fold_metrics(backtest, spec.coverage_metric),
                              factors=conformal_factors(backtest, spec.interval, spec.horizon_weeks))
    keys = ["store_id", "forecast_date"]
    base = members[names[0]]["forecast"][keys].reset_index(drop=True)
    aligned = {n: base.merge(members[n]["forecast"], on=keys, how="left", validate="one_to_one") for n in names}
    combined = combine(aligned, weights)
    registries = {n: (r.iloc[0].to_dict() if isinstance(r := members[n]["registry"], pd.DataFrame) else dict(r))
                  for n in names}
    # a member that only forecast brings its registry row as read from the warehouse (Timestamps), a refit one dates
    train_end = max(pd.Timestamp(r["train_end"]) for r in registries.values())
    plan_start = train_end + pd.Timedelta(days=1)
    forecast = interval_forecast(base["store_id"], base["forecast_date"], combined["sales_pred"].clip(min=0),
                                 combined["customers_pred"].clip(min=0), plan_start, calibration.factors,
                                 spread=combined[SPREAD])
    params = {"weights": weights, "members": {n: registries[n]["model_version"] for n in names},
              "fold_weights": per_fold, "method": "nnls_rmspe",
              "champion_half_life_folds": spec.champion_half_life_folds}
    train_start = min(pd.Timestamp(r["train_start"]) for r in registries.values())
    result = package(BLEND, params, forecast, calibration, train_start=train_start, train_end=train_end,
                     n_train_rows=int(registries[names[0]]["n_train_rows"]),
                     meta={"blended_at": datetime.now(timezone.utc)}, spec=spec)
    result.forecaster = BlendWeights({**params, "interval_factors": calibration.factors.to_dict(orient="list")})
    return result
