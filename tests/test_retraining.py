"""The retraining policy's decisions: each reason to refit, in its order, and forecast-only otherwise."""

from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from forecasting.retraining import FORECAST_ONLY, REFIT, RetrainingPolicy, VersionState, decide
from monitoring.checks import CheckOutcome

NOW = datetime(2026, 11, 27, 12, tzinfo=timezone.utc)
PARAMS = {"n_estimators": 50, "max_depth": 12}
LAYOUT = {"horizon_days": 42, "interval": 0.8}
STORES = frozenset({1, 2, 3})


def _latest(**changes) -> VersionState:
    fields = dict(model="random_forest", model_version="20261125T000000000000Z",
                  trained_at=NOW - timedelta(days=2), stores=STORES, artifact_dir=Path("/models/rf/v"),
                  params=PARAMS, layout=LAYOUT)
    return VersionState(**{**fields, **changes})


def _champion(realised: float, backtest: float = 0.10, ratio: float = 1.25) -> CheckOutcome:
    """The monitoring check realised_vs_backtest_accuracy's outcome, as monitoring/checks.py reports it."""
    return CheckOutcome("realised_vs_backtest_accuracy", "ERROR", realised / backtest <= ratio, realised / backtest,
                        ratio, {"realised_rmspe": realised, "backtest_rmspe": backtest, "n_days": 14})


def _decide(latest=None, *, stores=STORES, params=PARAMS, layout=LAYOUT, champion=None, **policy):
    return decide("random_forest", latest, stores=stores, params=params, layout=layout, degradation=champion,
                  policy=RetrainingPolicy(**policy), now=NOW)


def test_a_recent_version_on_the_same_stores_only_forecasts():
    decision = _decide(_latest(), champion=_champion(0.12))
    assert decision.decision == FORECAST_ONLY and decision.version.model_version == "20261125T000000000000Z"
    assert "1.20x within 1.25x" in decision.reason
    assert decision.values["realised_rmspe"] == 0.12 and decision.values["age_days"] == 2.0


def test_no_realised_forecasts_yet_still_forecasts_only():
    decision = _decide(_latest(), champion=None)
    assert decision.decision == FORECAST_ONLY and "no realised forecasts" in decision.reason


@pytest.mark.parametrize(("kwargs", "reason"), [
    ({"force_refit": True}, "asked"),
    ({"latest": None}, "no trained version"),
    ({"latest": _latest(artifact_dir=None)}, "artifact folder"),
    ({"params": {**PARAMS, "max_depth": 20}}, "model parameters changed: max_depth"),
    ({"layout": {**LAYOUT, "horizon_days": 48}}, "forecast layout changed: horizon_days"),
    ({"stores": STORES | {4}}, "store set changed: 1 new, 0 gone"),
    ({"champion": _champion(0.13)}, "champion degraded"),
    ({"latest": _latest(trained_at=NOW - timedelta(days=8))}, "8.0 days old"),
    ({"latest": _latest(trained_at=NOW - timedelta(days=3)), "max_age_days": 2}, "3.0 days old"),
    ({"champion": _champion(0.115, ratio=1.1)}, "champion degraded"),
])
def test_each_reason_to_refit(kwargs, reason):
    latest = kwargs.pop("latest", _latest())
    decision = _decide(latest, **kwargs)
    assert decision.decision == REFIT and decision.refit and reason in decision.reason
    assert decision.version is None


def test_the_strongest_reason_is_the_one_recorded():
    decision = _decide(_latest(trained_at=NOW - timedelta(days=30)), stores=STORES - {3}, champion=_champion(0.5))
    assert decision.reason.startswith("store set changed") and decision.values["stores_gone"] == [3]
