"""Metric definitions on hand-computed examples."""

import math

import numpy as np
import pandas as pd
import pytest

from forecasting.metrics import (
    METRICS,
    compute_metrics,
    interval_coverage,
    mae,
    mape,
    fold_metrics,
    mean_rmspe,
    rmse,
    rmspe,
)

Y = [100.0, 200.0, 0.0, 50.0]
P = [110.0, 180.0, 30.0, 50.0]
OPEN = [True, True, True, False]


def test_rmspe_ignores_closed_and_zero_sales_days():
    # open & sales > 0: rows 0, 1 -> percentage errors -0.1, 0.1
    assert rmspe(Y, P, OPEN) == pytest.approx(0.1)
    # without is_open only the zero-sales row is dropped: (0.01 + 0.01 + 0) / 3
    assert rmspe(Y, P) == pytest.approx(math.sqrt(0.02 / 3))


def test_rmspe_kaggle_example_values():
    y = np.array([1000.0, 2000.0, 4000.0])
    p = np.array([900.0, 2200.0, 4000.0])
    assert rmspe(y, p) == pytest.approx(math.sqrt((0.1**2 + 0.1**2 + 0.0) / 3))


def test_rmse_mae_over_open_days():
    # open rows 0..2: errors -10, 20, -30
    assert rmse(Y, P, OPEN) == pytest.approx(math.sqrt((100 + 400 + 900) / 3))
    assert mae(Y, P, OPEN) == pytest.approx(20.0)
    # without is_open every row with an actual counts
    assert mae(Y, P) == pytest.approx(15.0)


def test_mape_on_positive_sales():
    assert mape(Y, P, OPEN) == pytest.approx(0.1)
    assert mape([10.0, 0.0], [15.0, 5.0]) == pytest.approx(0.5)


def test_nan_actuals_ignored_and_empty_is_nan():
    assert rmspe([np.nan, 100.0], [5.0, 90.0]) == pytest.approx(0.1)
    assert math.isnan(rmspe([0.0, 0.0], [1.0, 2.0]))
    assert math.isnan(rmse([1.0], [1.0], [False]))


def test_null_is_open_counts_as_open():
    is_open = pd.Series([True, None, False], dtype="boolean")
    assert rmspe([100.0, 100.0, 100.0], [90.0, 80.0, 0.0], is_open) == pytest.approx(math.sqrt((0.01 + 0.04) / 2))


def test_length_mismatch_raises():
    with pytest.raises(ValueError):
        rmspe([1.0, 2.0], [1.0])


def test_fold_metrics_long_format_with_the_coverage_named_after_the_level():
    folds = pd.DataFrame({"split": ["backtest_1"] * 4 + ["validation"] * 4, "sales": Y * 2, "sales_pred": P * 2,
                          "is_open": OPEN * 2, "sales_lower": [90.0, 190.0, 0.0, 0.0] * 2,
                          "sales_upper": [120.0, 199.0, 10.0, 60.0] * 2})
    m = fold_metrics(folds, "coverage_90")
    assert list(m.columns) == ["split", "metric", "value"]
    assert list(dict.fromkeys(m["split"])) == ["backtest_1", "validation"]
    assert list(m.loc[m["split"] == "validation", "metric"]) == [*METRICS, "coverage_90"]
    values = m.loc[m["split"] == "validation"].set_index("metric")["value"]
    assert values[list(METRICS)].to_dict() == pytest.approx(compute_metrics(Y, P, OPEN))
    assert values["coverage_90"] == pytest.approx(0.5)  # open days with sales: 100 inside, 200 outside
    assert mean_rmspe(m) == pytest.approx(0.1)
    assert "coverage_90" not in set(fold_metrics(folds.drop(columns=["sales_lower", "sales_upper"]), "coverage_90")["metric"])


def test_vectorised_pandas_inputs():
    y = pd.Series(np.arange(1, 10001, dtype=float))
    assert rmspe(y, y * 1.05) == pytest.approx(0.05)
    assert mape(y, y * 0.9) == pytest.approx(0.1)


def test_interval_coverage():
    y = [100.0, 100.0, 100.0, 0.0]
    assert interval_coverage(y, [90, 101, 50, 0], [110, 120, 99, 0]) == pytest.approx(1 / 3)
