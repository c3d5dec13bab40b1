"""Small valid inputs degrade with a logged warning (fewer folds, clusters, a shorter LSTM lookback, HGB without
empty columns, ADF skipped) or stop with a message naming the minimum. Through the whole pipeline (one store, 104
and 60 days of history): tests/test_bad_input_catalogue.py."""

from __future__ import annotations

import logging

import pandas as pd
import pytest

from forecasting.folds import make_folds


def history(n_days: int) -> pd.DataFrame:
    return pd.DataFrame({"sale_date": pd.date_range("2015-01-01", periods=n_days), "is_history": True})


def test_short_history_gets_fewer_folds_with_a_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="forecasting.folds"):
        folds = make_folds(history(150), 3, 42)
    assert [f.split for f in folds] == ["backtest_1", "validation"]
    assert "history of 150 days: 2 of 3 folds" in caplog.text and "182 days give all 3" in caplog.text
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="forecasting.folds"):
        assert len(make_folds(history(182), 3, 42)) == 3
    assert not caplog.records


def test_too_short_history_names_the_minimum():
    with pytest.raises(ValueError, match=r"history of 60 days \(2015-01-01..2015-03-01\) is too short: at least 98 "
                                         r"days are needed \(56 training days before a 42-day validation fold\)"):
        make_folds(history(60), 3, 42)


def test_lstm_too_short_for_any_lookback_names_the_minimum():
    from forecasting.models import lstm

    frame = history(45).assign(store_id=1, sales=100.0, customers=10.0, is_open=True)
    with pytest.raises(ValueError, match=r"lstm: history of 45 days is too short: at least 49 days are needed"):
        lstm.fit(frame, lstm.FAST_PARAMS)


def test_adf_skipped_on_short_series_with_a_warning(caplog):
    import numpy as np

    from analytics.diagnostics import series_diagnostics

    rng = np.random.default_rng(0)
    frame = pd.concat([history(n).assign(store_id=s) for s, n in ((1, 200), (2, 40))], ignore_index=True)
    frame = frame.assign(is_open=True, sales=1000 * np.exp(0.1 * rng.standard_normal(len(frame))))
    with caplog.at_level(logging.WARNING, logger="analytics.diagnostics"):
        d = series_diagnostics(frame).set_index("store_id")
    assert np.isfinite(d.loc[1, "adf_pvalue"]) and np.isnan(d.loc[2, "adf_pvalue"])
    assert "ADF test skipped (NaN) for 1 of 2 stores with fewer than 53 open days with sales" in caplog.text
