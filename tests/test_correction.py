"""The per-store level correction (forecasting.correction): fitted on earlier folds only, as strong as store biases
persisted, and carried with the version so every forecast of it is corrected alike."""

import numpy as np
import pandas as pd
import pytest

from forecasting.correction import (
    MIN_BIAS_DAYS,
    StoreBiasCorrection,
    correct_backtest,
    persistence_slope,
    store_bias,
)

SPLITS = ["backtest_1", "backtest_2", "validation"]


def fold_rows(split: str, bias_by_store: dict[int, float], days: int = 14, sales: float = 1000.0) -> pd.DataFrame:
    """One fold's backtest rows: each store's forecast exp(bias) times its actual sales on every day."""
    stores = np.repeat(list(bias_by_store), days)
    bias = np.repeat(list(bias_by_store.values()), days)
    return pd.DataFrame({"split": split, "store_id": stores, "is_open": True, "sales": sales,
                         "sales_pred": sales * np.exp(bias), "horizon_day": np.tile(np.arange(days), len(bias_by_store))})


def backtest(biases: list[dict[int, float]]) -> pd.DataFrame:
    return pd.concat([fold_rows(s, b) for s, b in zip(SPLITS, biases)], ignore_index=True)


def test_store_bias_is_the_mean_log_error_of_stores_with_enough_days():
    rows = pd.concat([fold_rows("v", {1: 0.2, 2: -0.1}), fold_rows("v", {3: 0.5}, days=MIN_BIAS_DAYS - 1)])
    rows.loc[rows.index[0], "is_open"] = False  # a closed day is not scored
    rows.loc[rows.index[1], "sales_pred"] = 1e9
    bias = store_bias(rows.reset_index(drop=True))
    assert set(bias.index) == {1, 2}
    assert bias[2] == pytest.approx(-0.1)
    assert bias[1] == pytest.approx((12 * 0.2 + np.log(1e9 / 1000)) / 13)


def test_persistence_slope_measures_how_much_store_bias_carried_over():
    rng = np.random.default_rng(0)
    first = pd.Series(rng.normal(0, 0.1, 500), index=np.arange(500))
    assert persistence_slope([first, 0.6 * first - 0.03]) == pytest.approx(0.6)  # the fold's common shift is not
    assert persistence_slope([first, first * 2]) == 1.0  # clipped
    assert persistence_slope([first, -first]) == 0.0
    independent = pd.Series(rng.normal(0, 0.1, 500), index=np.arange(500))
    assert persistence_slope([first, independent]) < 0.15
    assert persistence_slope([first]) == 0.0


def test_each_fold_is_corrected_from_the_folds_before_it_only():
    stores = range(1, 41)
    rng = np.random.default_rng(1)
    level = {s: float(rng.normal(0, 0.1)) for s in stores}
    pred = backtest([level, {s: 0.5 * b for s, b in level.items()}, {s: 0.25 * b for s, b in level.items()}])
    result = correct_backtest(pred)
    corrected, slopes = result.predictions, {split: e["slope"] for split, e in result.effects.items()}

    assert list(slopes) == ["validation"] and slopes["validation"] == pytest.approx(0.5)
    early = pred["split"] != "validation"
    assert corrected.loc[early, "sales_pred"].equals(pred.loc[early, "sales_pred"])
    valid = corrected.loc[~early]
    # the validation bias 0.25 b is removed exactly: slope 0.5 times backtest_2's 0.5 b
    assert np.allclose(valid["sales_pred"], valid["sales"])

    # what happens on the validation fold itself does not change its correction
    noisy = pred.copy()
    noisy.loc[~early, "sales"] *= rng.uniform(0.5, 2.0, (~early).sum())
    again = correct_backtest(noisy).predictions
    factor = again.loc[~early, "sales_pred"] / noisy.loc[~early, "sales_pred"]
    assert np.allclose(factor, corrected.loc[~early, "sales_pred"] / pred.loc[~early, "sales_pred"])


def test_the_plan_correction_uses_all_folds_and_round_trips_through_the_metadata():
    pred = backtest([{1: 0.2, 2: -0.2}, {1: 0.1, 2: -0.1}, {1: 0.05, 2: -0.05}])
    correction = correct_backtest(pred).plan
    assert correction.slope == pytest.approx(0.5)
    assert correction.store_bias == pytest.approx({1: 0.05, 2: -0.05})
    assert np.allclose(correction.factors([1, 2, 99]), [np.exp(-0.025), np.exp(0.025), 1.0])  # unknown store: 1
    assert correct_backtest(pred.loc[pred["split"] == SPLITS[0]]).plan is None  # one fold: no slope to measure

    again = StoreBiasCorrection.from_meta({"store_correction": correction.to_meta()})
    assert again == correction
    assert StoreBiasCorrection.from_meta({}) is None and StoreBiasCorrection.from_meta({"store_correction": None}) is None
