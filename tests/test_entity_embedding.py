"""The entity-embedding network forecaster on small generated frames (tests/test_models.py's ``make_frame``)."""

import logging

import numpy as np
import pandas as pd
import pytest

from forecasting.artifacts import load_forecaster, save_result
from forecasting.correction import StoreBiasCorrection
from forecasting.folds import ForecastSpec
from forecasting.features import RECENT_SALES_FEATURES, plan_rows, prepare_frame, tabular_design
from forecasting.models import entity_embedding
from forecasting.protocol import MODEL_NAMES, PREDICTION_COLUMNS, REGISTRY, create
from forecasting.runner import train
from serving.api.model_artifact import _tabular_predictor
from test_models import HORIZON, make_frame, stats_for, store_stats_table, validation_split  # tests/ is on sys.path

NAME = "entity_embedding"
# enough steps for a small network to learn the generated weekday and promo effects in a few seconds
LEARNING = {"units": [32], "dropout": 0.0, "batch_size": 32, "epochs": 12, "patience": 3, "learning_rate": 5e-3}


@pytest.fixture(scope="module")
def frame():
    return prepare_frame(make_frame())


@pytest.fixture(scope="module")
def split(frame):
    return validation_split(frame)


@pytest.fixture(scope="module")
def stats(frame, split):
    return stats_for(split[0], store_stats_table(frame))


@pytest.fixture(scope="module")
def fitted(split, stats):
    return create(NAME, profile="fast").fit(split[0], stats)


def test_registered_but_not_a_pipeline_model():
    assert NAME in REGISTRY and NAME not in MODEL_NAMES
    assert isinstance(create(NAME), entity_embedding.EntityEmbeddingForecaster)


def test_fit_predict_rows_in_order_and_closed_days_zero(split, fitted):
    train_rows, valid = split
    shuffled = valid.sample(frac=1.0, random_state=5)
    pred = fitted.predict(train_rows, shuffled)
    assert list(pred.columns) == PREDICTION_COLUMNS and len(pred) == len(shuffled)
    np.testing.assert_array_equal(pred["store_id"], shuffled["store_id"])
    np.testing.assert_array_equal(pred["sale_date"], shuffled["sale_date"])
    closed = ~shuffled["is_open"].to_numpy()
    assert closed.any() and (pred.loc[closed, ["sales_pred", "customers_pred"]].to_numpy() == 0).all()
    open_sales = pred.loc[~closed, "sales_pred"].to_numpy()
    assert np.isfinite(open_sales).all() and (open_sales > 0).all()
    # the network's inputs: every embedded column the frame has, the store among them, each with its own table
    encoder = fitted.pipeline.encoder
    assert {"store_id", "day_of_week", "is_promo", "store_type", "assortment", "state_holiday"} <= set(encoder.embedded)
    assert encoder.cardinalities[encoder.embedded.index("store_id")] == train_rows["store_id"].nunique() + 1
    assert not set(encoder.embedded) & set(encoder.numeric)


def test_unseen_categories_take_the_unseen_row(split, fitted):
    """A store (or any embedded value) not seen in training gets code 0, not another store's embedding."""
    train_rows, _ = split
    rows = train_rows.loc[train_rows["is_open"]].head(3)
    encoder = fitted.pipeline.encoder
    x = tabular_design(rows.assign(store_id=999), fitted.stats, fitted.numeric, fitted.categorical)
    codes = encoder.categories(x)
    store = encoder.embedded.index("store_id")
    assert (codes[:, store] == entity_embedding.UNSEEN_CODE).all()
    assert (np.delete(codes, store, axis=1) > 0).all()  # the training rows' other values are all known
    known = tabular_design(rows, fitted.stats, fitted.numeric, fitted.categorical)
    assert (encoder.categories(known)[:, store] > 0).all()
    pred = fitted.predict(None, rows.assign(store_id=999))
    assert np.isfinite(pred["sales_pred"]).all() and (pred["sales_pred"] > 0).all()


def test_same_seed_same_forecast_early_stopping_and_epoch_log(split, stats, caplog, capsys):
    train_rows, valid = split
    params = {**LEARNING, "epochs": 3, "patience": 1}
    with caplog.at_level(logging.INFO, logger=entity_embedding.__name__):
        first = create(NAME, params).fit(train_rows, stats)
    second = create(NAME, params).fit(train_rows, stats)
    pd.testing.assert_frame_equal(first.predict(None, valid), second.predict(None, valid))
    [h] = first.pipeline.history
    assert [h] == second.pipeline.history
    assert 1 <= len(h["loss"]) == len(h["val_loss"]) <= 3  # early stopping on the held-out last weeks
    assert any(r.getMessage().startswith("entity_embedding epoch 1/3: loss=") for r in caplog.records)
    assert capsys.readouterr().out == ""
    # another seed is another network
    other = create(NAME, {**params, "seed": 7}).fit(train_rows, stats)
    assert not np.allclose(first.predict(None, valid)["sales_pred"], other.predict(None, valid)["sales_pred"])


def test_seeds_average_into_one_network(split, stats, tmp_path):
    """``n_seeds`` networks trained apart (seed, seed + 1) forecast the mean of their log deviations, saved as one
    Keras file."""
    train_rows, valid = split
    both = create(NAME, {"n_seeds": 2, "seed": 3}, profile="fast").fit(train_rows, stats)
    alone = [create(NAME, {"seed": seed}, profile="fast").fit(train_rows, stats) for seed in (3, 4)]
    x = tabular_design(valid, stats, both.numeric, both.categorical)
    np.testing.assert_allclose(both.pipeline.predict(x), np.mean([a.pipeline.predict(x) for a in alone], axis=0),
                               rtol=1e-5, atol=1e-6)
    assert len(both.pipeline.history) == 2
    both.save(tmp_path)
    assert len(list(tmp_path.glob("*.keras"))) == 1
    pd.testing.assert_frame_equal(type(both).load(tmp_path).predict(None, valid), both.predict(None, valid))


def test_the_held_out_weeks_are_the_last_before_the_cut(split, stats, caplog):
    train_rows, _ = split
    open_rows = train_rows.loc[train_rows["is_open"] & (train_rows["sales"] > 0)]
    last = open_rows["sale_date"].max()
    expected = int((open_rows["sale_date"] > last - pd.Timedelta(days=14)).sum())
    with caplog.at_level(logging.INFO, logger=entity_embedding.__name__):
        create(NAME, {"validation_days": 14}, profile="fast").fit(train_rows, stats)
        no_hold_out = create(NAME, {"validation_days": 0}, profile="fast").fit(train_rows, stats)
    assert f"{len(open_rows) - expected} training rows, {expected} held out" in caplog.text
    assert f"{len(open_rows)} training rows, 0 held out" in caplog.text
    assert "val_loss" not in no_hold_out.pipeline.history[0]


def test_learns_a_clear_promo_effect(split, stats):
    """make_frame's promo multiplies sales by 1.25.  Against the store's plain mean (no promo in the offset) the
    network itself must learn it: the same open weekdays forecast ~25% higher with promo than without."""
    train_rows, valid = split
    fitted = create(NAME, {**LEARNING, "target_offset": "store_log_sales_mean"}).fit(train_rows, stats)
    days = valid.loc[valid["is_open"] & (valid["day_of_week"] <= 5)]
    with_promo = fitted.predict(None, days.assign(is_promo=True))["sales_pred"].to_numpy()
    without = fitted.predict(None, days.assign(is_promo=False))["sales_pred"].to_numpy()
    effect = float(np.mean(np.log(with_promo / without)))
    assert np.log(1.15) < effect < np.log(1.40)
    # a network without the promo inputs (the flag, and the statistics and recent sales joined by it) cannot tell
    # the two apart
    blind = create(NAME, {**LEARNING, "target_offset": "store_log_sales_mean", "embedded": ["store_id", "day_of_week"],
                          "drop_features": [c for c in fitted.numeric if "promo" in c] + RECENT_SALES_FEATURES}
                   ).fit(train_rows, stats)
    assert "is_promo" not in blind.pipeline.encoder.embedded + blind.pipeline.encoder.numeric
    np.testing.assert_allclose(blind.predict(None, days.assign(is_promo=True))["sales_pred"],
                               blind.predict(None, days.assign(is_promo=False))["sales_pred"], rtol=1e-6)


def test_saved_artifact_reloads_and_serves_identically(frame, tmp_path):
    """The runner's artifact (Keras file + joblib state, checksummed) loads through load_forecaster as a server does
    and through the API's tabular live path, predicting exactly what the trained model forecast."""
    tm = train(create(NAME, profile="fast"), frame, store_stats_table(frame), ForecastSpec(horizon_days=HORIZON))
    directory = save_result(tm, tmp_path)
    assert {entity_embedding.MODEL_FILE, entity_embedding.STATE_FILE} <= {p.name for p in directory.iterdir()}
    loaded = load_forecaster(directory, [tmp_path])
    plan = plan_rows(frame)
    expected = tm.forecaster.predict(None, plan)
    pd.testing.assert_frame_equal(loaded.predict(None, plan), expected)
    # the plan forecast is the prediction with the version's store correction (forecasting.correction)
    ordered = expected.sort_values(["store_id", "sale_date"])
    correction = StoreBiasCorrection.from_meta(tm.meta)
    np.testing.assert_allclose(tm.forecast.sort_values(["store_id", "forecast_date"])["sales_pred"],
                               ordered["sales_pred"] * correction.factors(ordered["store_id"]), rtol=1e-6)
    # the API's path: feature rows in any order, answered in that order
    request = plan.sample(frac=1.0, random_state=2).reset_index(drop=True)
    served = _tabular_predictor(loaded, lambda rows, sales, customers: rows.assign(
        sales_pred=np.asarray(sales), customers_pred=np.asarray(customers)))(request, None)
    np.testing.assert_array_equal(served["store_id"], request["store_id"])
    merged = served.merge(expected, on=["store_id", "sale_date"], suffixes=("", "_expected"))
    assert len(merged) == len(request)
    np.testing.assert_allclose(merged["sales_pred"], merged["sales_pred_expected"], rtol=1e-6)
