"""Forecast-only refresh: a saved model version forecasts a new origin without refitting.

The version's fitted model and the interval factors it was calibrated with (``meta.json``) come from its artifact
folder, so the new origin's intervals keep that calibration; its backtest rows come along for the blend.  The
blend refreshes from its members' new forecasts with the weights and factors it was fitted with.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from forecasting.artifacts import load_forecaster, read_meta
from forecasting.correction import StoreBiasCorrection
from forecasting.blend import combine
from forecasting.features import history_rows, plan_rows, prepare_frame
from forecasting.intervals import SPREAD
from forecasting.runner import FORECAST_COLUMNS, forecast_plan, interval_forecast

log = logging.getLogger(__name__)


def _factors(meta: dict) -> pd.DataFrame:
    return pd.DataFrame(meta["interval_factors"])


def saved_backtest(directory: str | Path) -> pd.DataFrame:
    """The version's calibrated fold rows, as its training wrote them."""
    return pd.read_parquet(Path(directory) / "backtest.parquet")


def forecast_saved_version(directory: str | Path, frame: pd.DataFrame) -> pd.DataFrame:
    """The plan rows of ``frame`` (``marts.fct_store_daily_features``) forecast by the version saved in
    ``directory``, stamped with its model and version (``FORECAST_COLUMNS``)."""
    meta = read_meta(directory)
    df = prepare_frame(frame)
    forecaster = load_forecaster(directory)
    forecast = forecast_plan(forecaster, history_rows(df), plan_rows(df), _factors(meta),
                             StoreBiasCorrection.from_meta(meta))
    return forecast.assign(model=meta["model"], model_version=meta["model_version"])[FORECAST_COLUMNS]


def forecast_saved_blend(directory: str | Path, member_forecasts: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """The saved blend over its members' forecasts of the same origin (each member must be the version the blend
    was fitted on: see :func:`blend_members`)."""
    meta = read_meta(directory)
    weights = meta["params"]["weights"]
    names = sorted(weights)
    keys = ["store_id", "forecast_date"]
    base = member_forecasts[names[0]][keys].reset_index(drop=True)
    aligned = {n: base.merge(member_forecasts[n], on=keys, how="left", validate="one_to_one") for n in names}
    combined = combine(aligned, weights)
    origin = pd.Timestamp(member_forecasts[names[0]]["forecast_date"].min())
    forecast = interval_forecast(base["store_id"], base["forecast_date"], combined["sales_pred"].clip(min=0),
                                 combined["customers_pred"].clip(min=0), origin, _factors(meta),
                                 spread=combined[SPREAD])
    return forecast.assign(model=meta["model"], model_version=meta["model_version"])[FORECAST_COLUMNS]


def blend_members(directory: str | Path) -> dict[str, str]:
    """model -> version the saved blend was fitted on."""
    return dict(read_meta(directory)["params"]["members"])
