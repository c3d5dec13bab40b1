"""Features, models and the training entry point on small generated frames (a handful of stores, ~200 days)."""

import copy
import json
import logging
import re
import tempfile
from pathlib import Path

import duckdb
import keras
import numpy as np
import pandas as pd
import pytest

from forecasting.features import (
    CARNIVAL_MEMORY,
    CARNIVAL_TUESDAY_MEMORY,
    HOLIDAY_MEMORY,
    load_store_stats_table,
    BOOLEAN_FEATURES,
    CATEGORICAL_FEATURES,
    NUMERIC_FEATURES,
    RECENT_SALES_FEATURES,
    STORE_STAT_FEATURES,
    StoreStats,
    add_store_stats,
    event_memory,
    recent_sales_features,
    history_rows,
    load_feature_frame,
    plan_rows,
    prepare_frame,
)
from forecasting.artifacts import load_forecaster, prune_artifacts, save_result
from forecasting.correction import StoreBiasCorrection
from forecasting.folds import ForecastSpec, fold_frames, make_folds
from forecasting.models import lstm, lstm_windows
from forecasting.models.networks import seed_members
from forecasting.models.tabular import STORE_TREND
from forecasting.protocol import MODEL_NAMES, PREDICTION_COLUMNS, REGISTRY, create, forecaster_class
from forecasting.runner import FORECAST_COLUMNS, train
from warehouse.dbt import load_history_as_raw_sales, run_dbt

HORIZON = 42
ALL_MODELS = tuple(REGISTRY)  # the pipeline's (MODEL_NAMES) and the other registered ones (lightgbm)


def make_frame(n_stores=4, n_days=200, plan_days=HORIZON, seed=0, gap_store=2):
    """A frame with the columns of marts.fct_store_daily_features: history then plan rows.

    Store ``gap_store`` misses 20 days of history (refurbishment-like gap); store 1 opens on state holidays.
    """
    rng = np.random.default_rng(seed)
    dates = pd.date_range("2014-09-01", periods=n_days + plan_days, freq="D")
    stores = np.arange(1, n_stores + 1)
    s = np.repeat(stores, len(dates))
    d = pd.DatetimeIndex(np.tile(dates, n_stores))
    n = len(s)
    dow = pd.DatetimeIndex(d).dayofweek.to_numpy() + 1
    week = np.asarray((d - dates[0]).days) // 7
    holiday = np.isin(pd.DatetimeIndex(d).strftime("%m-%d"), ["10-03", "12-25", "12-26", "01-01"])
    is_open = (dow != 7) & ~(holiday & (s != 1)) & (rng.random(n) > 0.01)  # store 1 opens on holidays
    is_promo = (week % 2 == 0) & (dow <= 5)
    level = rng.uniform(3000, 9000, n_stores)[s - 1]
    dow_eff = np.array([1.15, 1.0, 0.95, 0.95, 1.05, 0.9, 0.5])[dow - 1]
    sales = level * dow_eff * np.where(is_promo, 1.25, 1.0) * np.exp(rng.normal(0, 0.08, n))
    sales = np.where(is_open, np.round(sales), 0.0)
    customers = np.where(is_open, np.round(sales / rng.uniform(8, 10, n_stores)[s - 1]), 0.0)
    is_hist = d < dates[n_days]
    frame = pd.DataFrame(
        {
            "store_id": s.astype("int32"),
            "sale_date": d,
            "is_history": is_hist,
            "sales": np.where(is_hist, sales, np.nan),
            "customers": np.where(is_hist, customers, np.nan),
            "is_open": is_open,
            "is_promo": is_promo,
            "state_holiday": np.where(holiday, "a", "0"),
            "is_state_holiday": holiday,
            "is_school_holiday": (pd.DatetimeIndex(d).month == 10) & (pd.DatetimeIndex(d).day < 15),
            "day_of_week": dow,
            "day_of_month": pd.DatetimeIndex(d).day,
            "month": pd.DatetimeIndex(d).month,
            "year": pd.DatetimeIndex(d).year,
            "week_of_year": pd.DatetimeIndex(d).isocalendar().week.to_numpy().astype(int),
            "day_of_year": pd.DatetimeIndex(d).dayofyear,
            "store_type": np.array(["a", "b", "c", "d"])[(s - 1) % 4],
            "assortment": np.array(["a", "c", "b"])[(s - 1) % 3],
            "competition_distance_m": np.where(s == 1, np.nan, 500.0 * s),
            "is_competition_open": s != 1,
            "months_since_competition_open": pd.Series(np.where(s % 2 == 0, 24.0, np.nan)).astype("Int32").to_numpy(),
            "is_promo2_active": s % 2 == 1,
            "is_promo2_month": (s % 2 == 1) & np.isin(pd.DatetimeIndex(d).month, [1, 4, 7, 10]),
            "days_since_state_holiday": 14,
            "days_until_state_holiday": 14,
            "days_since_closed": np.minimum(dow % 7, 14),
            "days_until_closed": 7 - dow,
        }
    )
    if gap_store:
        gap = (frame["store_id"] == gap_store) & frame["sale_date"].between(dates[60], dates[79])
        frame = frame.loc[~gap]
    return frame.reset_index(drop=True)


def _build_store_stats(history, warehouse):
    load_history_as_raw_sales(history, warehouse)
    run_dbt(warehouse, ["run", "--select", "+agg_store_sales_stats +agg_store_recent_sales"])
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return load_store_stats_table(con)


_STATS_CACHE: dict[int, pd.DataFrame] = {}
_STATS_DIR = tempfile.TemporaryDirectory(prefix="test_store_stats_")


def store_stats_table(frame: pd.DataFrame) -> pd.DataFrame:
    """marts.agg_store_sales_stats and agg_store_recent_sales of the frame's history (load_store_stats_table), built
    by dbt (cached per history content)."""
    hist = history_rows(frame)
    key = int(pd.util.hash_pandas_object(hist[["store_id", "sale_date", "sales", "customers", "is_open", "is_promo"]],
                                         index=False).sum())
    if key not in _STATS_CACHE:
        _STATS_CACHE[key] = _build_store_stats(hist, Path(_STATS_DIR.name) / f"{key & 0xFFFFFFFF}.duckdb")
    return _STATS_CACHE[key]


def stats_for(train: pd.DataFrame, table: pd.DataFrame | None = None) -> StoreStats:
    """The store statistics a model trained on ``train`` gets: the cut after its last day."""
    table = store_stats_table(train) if table is None else table
    return StoreStats.from_table(table, train["sale_date"].max() + pd.Timedelta(days=1))


def fit(name: str, train: pd.DataFrame, table: pd.DataFrame | None = None):
    return create(name, profile="fast").fit(train, stats_for(train, table))


def validation_split(history: pd.DataFrame, horizon: int = HORIZON):
    """(training rows, the last ``horizon`` days of history): the validation fold."""
    hist = history_rows(history)
    return fold_frames(hist, make_folds(hist, 1, horizon)[-1])


@pytest.fixture(scope="module")
def frame():
    return prepare_frame(make_frame())


@pytest.fixture(scope="module")
def stats_table(frame):
    return store_stats_table(frame)


@pytest.fixture(scope="module")
def split(frame):
    return validation_split(frame)


# --------------------------------------------------------------------------------------------- features


def test_feature_lists_are_disjoint_and_present(frame):
    cols = NUMERIC_FEATURES + CATEGORICAL_FEATURES + BOOLEAN_FEATURES
    assert len(cols) == len(set(cols))
    assert set(cols) <= set(frame.columns)


def test_validation_fold_is_the_last_42_days(frame):
    train, valid = validation_split(frame)  # plan rows are dropped
    hist = history_rows(frame)
    assert len(train) + len(valid) == len(hist)
    assert valid["sale_date"].nunique() == HORIZON
    assert valid["sale_date"].min() == hist["sale_date"].max() - pd.Timedelta(days=HORIZON - 1)
    assert train["sale_date"].max() < valid["sale_date"].min()
    assert valid["is_history"].all() and train["is_history"].all()


def test_load_feature_frame_roundtrip(tmp_path):
    raw = make_frame(n_stores=2, n_days=60, plan_days=7, gap_store=0)
    db = tmp_path / "wh.duckdb"
    con = duckdb.connect(str(db))
    con.execute("CREATE SCHEMA marts")
    con.register("src", raw.sample(frac=1.0, random_state=1))  # shuffled: loader must sort
    con.execute("CREATE TABLE marts.fct_store_daily_features AS SELECT * FROM src")
    con.close()
    with duckdb.connect(str(db), read_only=True) as con:
        loaded = load_feature_frame(con)
    assert len(loaded) == len(raw)
    assert loaded[["store_id", "sale_date"]].equals(
        loaded[["store_id", "sale_date"]].sort_values(["store_id", "sale_date"]).reset_index(drop=True)
    )
    assert loaded["is_history"].dtype == bool and loaded["is_open"].dtype == bool
    assert loaded["months_since_competition_open"].dtype == "float64"


def test_store_stats_of_a_cut_join_on_every_row(frame, split, stats_table):
    train, valid = split
    stats = stats_for(train, stats_table)
    assert stats.feature_cut_date == valid["sale_date"].min()
    feats = add_store_stats(valid, stats)
    assert set(STORE_STAT_FEATURES) <= set(feats.columns)
    assert not feats[STORE_STAT_FEATURES].isna().any().any()
    # the dbt statistics are the training rows' own: store 1's mean log sales over the year before the cut
    t1 = train.loc[(train["store_id"] == 1) & train["is_open"] & (train["sales"] > 0)
                   & (train["sale_date"] >= stats.feature_cut_date - pd.Timedelta(days=364))]
    assert feats.loc[feats["store_id"] == 1, "store_log_sales_mean"].iloc[0] == pytest.approx(np.log1p(t1["sales"]).mean())
    # store x weekday x promo differs from the store mean (the grain is really used)
    assert feats["store_dow_promo_log_sales_mean"].nunique() > feats["store_id"].nunique()


def test_store_stats_ignore_the_window_being_forecast(frame, split, stats_table):
    """Scaling validation-window sales tenfold changes nothing at the validation cut (dbt rebuilt on it)."""
    train, valid = split
    poisoned = history_rows(frame).copy()
    poisoned.loc[poisoned["sale_date"] >= valid["sale_date"].min(), ["sales", "customers"]] *= 10
    table2 = store_stats_table(poisoned)
    feats = add_store_stats(valid, stats_for(train, stats_table))[STORE_STAT_FEATURES]
    pd.testing.assert_frame_equal(feats, add_store_stats(valid, stats_for(train, table2))[STORE_STAT_FEATURES])
    # ...while the forecast cut, which includes that window, does move
    last_cut = poisoned["sale_date"].max() + pd.Timedelta(days=1)
    a = StoreStats.from_table(stats_table, last_cut).store["store_log_sales_mean"]
    b = StoreStats.from_table(table2, last_cut).store["store_log_sales_mean"]
    assert (b > a).all()


def test_store_stats_fallback_for_unknown_store_and_missing_cut(split, stats_table):
    train, valid = split
    other = valid.head(3).assign(store_id=999)
    feats = add_store_stats(other, stats_for(train, stats_table))
    assert not feats[STORE_STAT_FEATURES].isna().any().any()
    with pytest.raises(ValueError, match="no store statistics for the cut 2014-09-05"):
        StoreStats.from_table(stats_table, "2014-09-05")
    with pytest.raises(ValueError, match="need the store statistics"):
        create("baseline").fit(train, None)
    # statistics of another cut are refused: they would leak (later cut) or not describe the rows (earlier)
    with pytest.raises(ValueError, match="do not belong to training data"):
        create("random_forest", profile="fast").fit(
            train, StoreStats.from_table(stats_table, train["sale_date"].max() + pd.Timedelta(days=43)))


def test_recent_sales_join_each_row_onto_the_cut_it_is_forecast_from(frame, split, stats_table):
    """Validation rows take the validation cut; older training rows the latest cut on or before them (one horizon
    apart), with that cut's values; the level against the training cut is 0 on the forecast rows."""
    train, valid = split
    stats = stats_for(train, stats_table)
    cut = stats.feature_cut_date
    rows = pd.concat([train, valid], ignore_index=True)
    x = pd.concat([rows, recent_sales_features(rows, stats)], axis=1)
    days = pd.to_datetime(x["sale_date"])
    in_valid = days >= cut
    np.testing.assert_array_equal(x.loc[in_valid, "days_after_cut"], (days[in_valid] - cut).dt.days)
    assert not x.loc[in_valid, ["recent_log_sales_year_vs_cut", "recent_store_log_sales_year_vs_cut"]].any().any()
    # the carnival memories are features of carnival Mondays and Tuesdays only
    carnival_day = x["days_from_carnival_monday"] if "days_from_carnival_monday" in x else pd.Series(9, index=x.index)
    for day, memory in ((0, CARNIVAL_MEMORY), (1, CARNIVAL_TUESDAY_MEMORY)):
        other_days = carnival_day.ne(day) & x["days_after_cut"].notna()
        assert other_days.any() and (x.loc[other_days, memory] == 0).all()
    # the holiday memory is a feature of state holidays only, the store's value at the row's cut
    holidays = x["is_state_holiday"].astype(bool)
    assert (x.loc[~holidays & x["days_after_cut"].notna(), HOLIDAY_MEMORY] == 0).all()
    on_holiday = x.loc[holidays & x["days_after_cut"].notna()]
    on_holiday = on_holiday.assign(feature_cut_date=pd.to_datetime(on_holiday["sale_date"])
                                   - pd.to_timedelta(on_holiday["days_after_cut"], unit="D"))
    on_holiday = on_holiday.merge(stats.recent_store.reset_index(), on=["feature_cut_date", "store_id"])
    assert on_holiday["store_log_sales_state_holiday_vs_year"].notna().sum() >= 2  # store 1 after its first holiday
    np.testing.assert_allclose(on_holiday[HOLIDAY_MEMORY], on_holiday["store_log_sales_state_holiday_vs_year"])
    np.testing.assert_allclose(event_memory(rows, stats, [HOLIDAY_MEMORY]),
                               np.nan_to_num(x[HOLIDAY_MEMORY].to_numpy(float)))
    # statistics saved with a model before the Tuesday's column existed still give every feature (no memory)
    older_stats = copy.deepcopy(stats)
    older_stats.recent_store = older_stats.recent_store.drop(columns="store_log_sales_carnival_tuesday_vs_year")
    old = recent_sales_features(rows, older_stats)
    assert not old[CARNIVAL_TUESDAY_MEMORY].fillna(0).any()
    np.testing.assert_array_equal(old[CARNIVAL_MEMORY], x[CARNIVAL_MEMORY])
    np.testing.assert_allclose(event_memory(rows, older_stats, [CARNIVAL_MEMORY, CARNIVAL_TUESDAY_MEMORY]),
                               np.nan_to_num(x[CARNIVAL_MEMORY].to_numpy(float)))
    # training rows: 0..41 days after their block's cut, blocks ending at the training cut
    older = x.loc[~in_valid & x["days_after_cut"].notna()]
    row_cut = pd.to_datetime(older["sale_date"]) - pd.to_timedelta(older["days_after_cut"], unit="D")
    assert older["days_after_cut"].between(0, HORIZON - 1).all()
    assert (((cut - row_cut).dt.days % HORIZON) == 0).all() and (row_cut < cut).all()
    assert row_cut.nunique() > 1
    # the values are the table's at the row's cut
    recent = stats_table.loc[stats_table["grain"] == "recent_store_dow_promo"]
    row = older.loc[older["recent_log_sales_last_vs_year"].notna()].iloc[-1]
    at = recent.loc[(recent["feature_cut_date"] == row_cut[row.name]) & (recent["store_id"] == row["store_id"])
                    & (recent["day_of_week"] == row["day_of_week"]) & (recent["is_promo"] == row["is_promo"])]
    assert row["recent_log_sales_last_vs_year"] == pytest.approx(at["log_sales_last_vs_year"].item())
    # rows before the first cut (no history before any cut) have none
    assert x.loc[days < row_cut.min(), RECENT_SALES_FEATURES].isna().all().all()


def test_carnival_memory_and_store_trend_shift_the_sales_offset():
    """The store's last carnival Monday against its year moves the log-sales offset the trees learn around (the
    feature is 0 on other days and NaN before the first cut); customers keep their own offset; it can be turned off.
    The store's trend joins it at ``trend_offset_weight``."""
    model = create("random_forest", profile="fast")
    offset_column = model.params["target_offset"]
    x = pd.DataFrame({offset_column: [8.0, 8.0, 8.0], "store_log_customers_mean": [6.0, 6.0, 6.0],
                      CARNIVAL_MEMORY: [-0.7, 0.0, np.nan]})
    offsets = model._offsets(x)
    np.testing.assert_allclose(offsets[:, 0], [7.3, 8.0, 8.0])
    # the carnival Tuesday's memory likewise (a model trained before it has no such design column)
    np.testing.assert_allclose(model._offsets(x.assign(**{CARNIVAL_TUESDAY_MEMORY: [0.0, 0.2, np.nan]}))[:, 0],
                               [7.3, 8.2, 8.0])
    if model.forecasts_customers:
        np.testing.assert_allclose(offsets[:, 1], 6.0)
    assert x[offset_column].tolist() == [8.0, 8.0, 8.0]  # the design frame is not written to
    off = create("random_forest", {"carnival_memory_offset": False}, profile="fast")._offsets(x)
    np.testing.assert_allclose(off[:, 0], 8.0)
    # a state holiday's memory likewise, with its own switch
    holiday = x.assign(**{HOLIDAY_MEMORY: [0.0, -1.5, np.nan]})
    np.testing.assert_allclose(model._offsets(holiday)[:, 0], [7.3, 6.5, 8.0])
    np.testing.assert_allclose(create("random_forest", {"holiday_memory_offset": False},
                                      profile="fast")._offsets(holiday)[:, 0], [7.3, 8.0, 8.0])
    saved_before_the_offset = create("random_forest", profile="fast")
    del saved_before_the_offset.params["carnival_memory_offset"]  # what an older artifact unpickles to
    np.testing.assert_allclose(saved_before_the_offset._offsets(x)[:, 0], 8.0)
    # the store trend joins the offset at the model's weight (LightGBM's default 1; NaN -> 0)
    x[STORE_TREND] = [0.05, -0.1, np.nan]
    np.testing.assert_allclose(model._offsets(x)[:, 0], [7.3, 8.0, 8.0])  # the forest's weight is 0
    np.testing.assert_allclose(create("lightgbm", profile="fast")._offsets(x)[:, 0], [7.35, 7.9, 8.0])


def test_recent_sales_ignore_the_window_being_forecast(frame, split, stats_table):
    """Scaling validation-window sales tenfold changes no recent-sales feature of the training or validation rows."""
    train, valid = split
    poisoned = history_rows(frame).copy()
    poisoned.loc[poisoned["sale_date"] >= valid["sale_date"].min(), ["sales", "customers"]] *= 10
    rows = pd.concat([train, valid], ignore_index=True)
    a = recent_sales_features(rows, stats_for(train, stats_table))
    b = recent_sales_features(rows, stats_for(train, store_stats_table(poisoned)))
    assert list(a.columns) == RECENT_SALES_FEATURES
    pd.testing.assert_frame_equal(a, b)


def test_tabular_options_drop_features_and_weigh_recent_rows(split, stats_table):
    train, valid = split
    stats = stats_for(train, stats_table)
    plain = create("lightgbm", profile="fast").fit(train, stats)
    assert set(RECENT_SALES_FEATURES) <= set(plain.numeric)
    dropped = create("lightgbm", {"drop_features": RECENT_SALES_FEATURES}, profile="fast").fit(train, stats)
    assert not set(RECENT_SALES_FEATURES) & set(dropped.numeric)
    weighted = create("lightgbm", {"recency_half_life_days": 30}, profile="fast")
    rows = train.loc[train["is_open"] & (train["sales"] > 0)]
    weights = weighted._recency_weights(rows, stats)
    age = (stats.feature_cut_date - rows["sale_date"]).dt.days.to_numpy()
    np.testing.assert_allclose(weights, 0.5 ** (age / 30))
    assert weights.max() == pytest.approx(0.5 ** (1 / 30))
    a = plain.predict(train, valid)["sales_pred"]
    b = weighted.fit(train, stats).predict(train, valid)["sales_pred"]
    assert not np.allclose(a, b)


# --------------------------------------------------------------------------------------------- models


@pytest.fixture(scope="module")
def fitted_models(split, stats_table):
    train, _ = split
    return {name: fit(name, train, table=stats_table) for name in ALL_MODELS}


def test_the_pipeline_models_are_registered():
    assert set(MODEL_NAMES) <= set(REGISTRY) and "lightgbm" in REGISTRY


@pytest.mark.parametrize("name", ALL_MODELS)
def test_fit_predict_shapes_and_closed_days(name, split, fitted_models):
    train, valid = split
    shuffled = valid.sample(frac=1.0, random_state=3)
    pred = fitted_models[name].predict(train, shuffled)
    assert list(pred.columns) == PREDICTION_COLUMNS
    assert len(pred) == len(shuffled)
    np.testing.assert_array_equal(pred["store_id"].to_numpy(), shuffled["store_id"].to_numpy())
    np.testing.assert_array_equal(pred["sale_date"].to_numpy(), shuffled["sale_date"].to_numpy())
    closed = ~shuffled["is_open"].to_numpy()
    assert closed.any()
    assert (pred.loc[closed, ["sales_pred", "customers_pred"]].to_numpy() == 0).all()
    open_pred = pred.loc[~closed, "sales_pred"].to_numpy()
    assert np.isfinite(open_pred).all() and (open_pred > 0).all()
    assert np.isfinite(pred["customers_pred"]).all()


def test_baseline_uses_store_dow_promo_medians(split, fitted_models):
    train, valid = split
    pred = fitted_models["baseline"].predict(train, valid)
    row = valid.loc[valid["is_open"]].iloc[0]
    end = train["sale_date"].max()
    recent = train.loc[
        (train["sale_date"] > end - pd.Timedelta(days=91))
        & (train["store_id"] == row["store_id"])
        & (train["day_of_week"] == row["day_of_week"])
        & (train["is_promo"] == row["is_promo"])
        & train["is_open"]
        & (train["sales"] > 0)
    ]
    got = pred.loc[valid.index[valid["is_open"]][0], "sales_pred"]
    assert got == pytest.approx(recent["sales"].median())


@pytest.mark.parametrize("name", ALL_MODELS)
def test_predictions_ignore_validation_actuals(name, frame, split, fitted_models):
    """No leakage: validation-window sales changes must not change the fit or the validation predictions."""
    train, valid = split
    hist2 = history_rows(frame).copy()
    in_valid = hist2["sale_date"] > train["sale_date"].max()
    hist2.loc[in_valid, ["sales", "customers"]] *= 10
    train2, valid2 = validation_split(hist2)
    pd.testing.assert_frame_equal(train, train2)
    p1 = fitted_models[name].predict(train, valid)
    # the context may even contain the (changed) validation rows: they must be ignored
    p2 = fit(name, train2).predict(hist2, valid2)
    np.testing.assert_allclose(p1["sales_pred"], p2["sales_pred"], rtol=1e-5)


@pytest.mark.parametrize("name", ALL_MODELS)
def test_save_load_roundtrip(name, tmp_path, split, fitted_models):
    train, valid = split
    fitted_models[name].save(tmp_path)
    loaded = forecaster_class(name).load(tmp_path)
    pd.testing.assert_frame_equal(fitted_models[name].predict(train, valid), loaded.predict(train, valid), rtol=1e-5)


def test_lstm_windows_handle_gaps_and_long_plans(frame, split):
    train, _ = split
    fitted = lstm.fit(train, lstm.FAST_PARAMS)
    # grid is continuous daily: the gap store's missing days are unobserved zeros, calendar unshifted
    hist = history_rows(frame)
    start = hist["sale_date"].min()
    n_days = (hist["sale_date"].max() - start).days + 1
    grid = lstm_windows.build_grid(np.unique(hist["store_id"]), start, n_days, fitted.scaler, fitted.layout, hist)
    assert grid.x.shape[:2] == (hist["store_id"].nunique(), n_days)
    obs = grid.x[:, :, lstm_windows.CH_OBSERVED]
    assert obs.sum() == len(hist)
    assert (obs[1, 60:80] == 0).all()  # store 2's gap
    # a plan longer than the training horizon (Kaggle's is 48 days) still gets a forecast
    last = hist["sale_date"].max()
    plan = make_frame(n_stores=4, n_days=200, plan_days=50, gap_store=0)
    plan = prepare_frame(plan)
    plan = plan.loc[~plan["is_history"]].reset_index(drop=True)
    assert plan["sale_date"].min() == last + pd.Timedelta(days=1)
    pred = lstm.predict(fitted, hist, plan)
    assert len(pred) == len(plan) and np.isfinite(pred["sales_pred"]).all()
    assert (pred.loc[~plan["is_open"].to_numpy(), "sales_pred"] == 0).all()


def test_lstm_same_seed_same_forecast_and_epochs_logged(split, caplog, capsys):
    """One ``fit`` with Keras callbacks: the same seed gives the identical forecast and history (seeded window
    draws), epochs go to the log (not stdout), and the history has one entry per epoch run."""
    train, valid = split
    params = {**lstm.FAST_PARAMS, "epochs": 3, "patience": 2}
    with caplog.at_level(logging.INFO, logger=lstm.__name__):
        first = lstm.fit(train, {**params, "verbose": 1})
    second = lstm.fit(train, params)  # verbose only sets the log level
    np.testing.assert_array_equal(lstm.predict(first, train, valid)["sales_pred"],
                                  lstm.predict(second, train, valid)["sales_pred"])
    assert first.history == second.history
    [h] = first.history  # one seed member
    assert 1 <= len(h["loss"]) == len(h["val_rmspe"]) == len(h["learning_rate"]) <= 3
    assert h["best_val_rmspe"] == pytest.approx(min(h["val_rmspe"]), abs=1e-5)
    assert any(r.getMessage().startswith("epoch 1/3: loss=") for r in caplog.records)
    assert capsys.readouterr().out == ""


def test_lstm_seeds_average_into_one_network(split, stats_table, tmp_path):
    """``n_seeds`` networks trained apart (seed, seed + 1) forecast the mean of their scaled log sales, saved as one
    Keras file; a warm-started refit continues each member on its own."""
    train, valid = split
    stats = stats_for(train, stats_table)
    both = create("lstm", {"n_seeds": 2, "seed": 3}, profile="fast").fit(train, stats)
    alone = [create("lstm", {"seed": seed}, profile="fast").fit(train, stats) for seed in (3, 4)]
    assert len(both.model.history) == 2 and both.model.history == [a.model.history[0] for a in alone]
    log_mean = np.mean([np.log1p(a.predict(train, valid)["sales_pred"].to_numpy()) for a in alone], axis=0)
    np.testing.assert_allclose(np.log1p(both.predict(train, valid)["sales_pred"].to_numpy()), log_mean, atol=1e-4)
    both.save(tmp_path)
    assert len(list(tmp_path.glob("*.keras"))) == 1
    pd.testing.assert_frame_equal(type(both).load(tmp_path).predict(train, valid), both.predict(train, valid))
    refitted = both.refit(history_rows(pd.concat([train, valid])), refit_epochs=1)
    assert len(seed_members(refitted.model.network)) == 2 and len(refitted.model.history) == 2
    assert refitted.model.train_end == valid["sale_date"].max()


def test_lstm_calendar_channels_come_from_the_mart_columns(frame):
    rows = frame.head(400)
    cal = lstm_windows.calendar_channels(rows)
    assert (cal[:, :7].argmax(axis=1) + 1 == rows["day_of_week"].to_numpy()).all() and (cal[:, :7].sum(axis=1) == 1).all()
    phase = 2 * np.pi * (rows["day_of_year"].to_numpy() - 1) / 365.25
    np.testing.assert_allclose(cal[:, 9:], np.column_stack([np.sin(phase), np.cos(phase)]), atol=1e-6)
    # the mart's columns are what counts, not the date: a shifted day_of_year moves the channels
    shifted = lstm_windows.calendar_channels(rows.assign(day_of_year=rows["day_of_year"] + 30))
    assert not np.allclose(shifted[:, 9:], cal[:, 9:])
    with pytest.raises(ValueError, match="day_of_week"):
        lstm_windows.calendar_channels(rows.drop(columns="day_of_week"))


def test_lstm_channels_follow_the_mart_columns_by_one_rule(frame):
    """Every mart column the tree models see becomes a channel without a list to update: a new dbt column is
    scaled min..p99.9 to [0, 1], NULLs get a flag, store-constant categoricals are static, leaky ones stay out."""
    hist = history_rows(frame).assign(
        days_until_new_event=lambda f: (f["day_of_year"] % 21).astype("int32"),  # a column dbt might add
        state_group=lambda f: (f["store_id"] % 2 + 1).astype("int32"),
        store_sales_rank=1.0)  # carries sales: never a feature
    layout = lstm_windows.ChannelLayout.from_history(hist)
    names = layout.covariate_names
    assert layout.scaled["days_until_new_event"] == (0.0, 20.0)
    assert "competition_distance_m_missing" in names and "store_sales_rank" not in names
    assert set(layout.static_one_hot) == {"store_type", "assortment", "state_group"}
    assert layout.one_hot == {"state_holiday": ("0", "a")}
    cov = layout.covariates(hist)
    scaled = cov[:, :-len(lstm_windows.CALENDAR_NAMES)]  # the calendar's sin/cos phases run -1..1
    assert cov.shape == (len(hist), len(names)) and scaled.min() >= 0 and scaled.max() <= 1
    np.testing.assert_allclose(cov[:, names.index("days_until_new_event")], hist["days_until_new_event"] / 20.0,
                               rtol=1e-6)
    no_competitor = hist["competition_distance_m"].isna().to_numpy()
    assert (cov[:, names.index("competition_distance_m_missing")] == no_competitor).all()
    assert (cov[no_competitor, names.index("competition_distance_m")] == 0).all()
    scaler = lstm_windows.StoreScaler.from_history(hist, layout)
    assert scaler.lookup(np.array([1, 2]))[["state_group_1", "state_group_2"]].to_numpy().tolist() == [[0, 1], [1, 0]]
    with pytest.raises(ValueError, match="days_until_new_event"):
        layout.covariates(hist.drop(columns="days_until_new_event"))


def test_lstm_rate_schedule_ignores_the_warmup_epochs():
    """A lucky score in the warm-up epochs neither halves the learning rate nor becomes the score to beat."""
    network = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
    network.compile(optimizer=keras.optimizers.Adam(learning_rate=0.1), loss="mse")
    schedule = lstm._PlateauAfterWarmup(3, monitor="val_rmspe", factor=0.5, patience=1, mode="min")
    schedule.set_model(network)
    schedule.on_train_begin()
    rates = []
    for epoch, score in enumerate([0.10, 0.50, 0.50, 0.40, 0.30, 0.30]):
        schedule.on_epoch_end(epoch, {"val_rmspe": score})
        rates.append(round(float(keras.ops.convert_to_numpy(network.optimizer.learning_rate)), 4))
    assert rates == [0.1, 0.1, 0.1, 0.1, 0.1, 0.05]  # halved only when epoch 6 does not beat epoch 5
    assert 1 < lstm.DEFAULT_PARAMS["min_epochs"] <= lstm.DEFAULT_PARAMS["epochs"]


def test_lstm_loss_adds_the_squared_percentage_error():
    """rmspe_weight 0 is the masked log-space MSE; with a weight, the sales percentage error is added, computed from
    the scaled error and the store's scale -- so overshooting costs more than undershooting by the same log amount."""
    y = np.zeros((1, 3, lstm_windows.N_Y), dtype="float32")
    y[..., lstm_windows.Y_WEIGHT] = [1, 1, 0]  # the last step is masked out
    y[..., lstm_windows.Y_SCALE] = 0.5  # log units per scaled unit
    over, under = np.zeros((1, 3, 2), "float32"), np.zeros((1, 3, 2), "float32")
    over[..., 0], under[..., 0] = [1.0, 1.0, 9.0], [-1.0, -1.0, 9.0]

    def loss(weight, pred):
        return float(keras.ops.convert_to_numpy(lstm.masked_loss(0.5, weight)(y, pred)))

    assert loss(0.0, over) == pytest.approx(1.0) and loss(0.0, under) == pytest.approx(1.0)
    assert loss(10.0, over) == pytest.approx(1.0 + 10 * (1 - np.exp(0.5)) ** 2, rel=1e-5)
    assert loss(10.0, under) == pytest.approx(1.0 + 10 * (1 - np.exp(-0.5)) ** 2, rel=1e-5)


def test_lstm_carnival_memory_moves_the_sales_offset(split, stats_table):
    """A carnival Monday's forecast moves by the store's carnival memory from the fit's store statistics, exactly
    (it is part of the sales offset the network forecasts around); other rows and stores keep theirs.  Without the
    statistics, or with the option off as in models saved before it, there is no memory."""
    train, valid = split
    stats = stats_for(train, stats_table)
    fitted = create("lstm", profile="fast").fit(train, stats)
    assert fitted.model.offset_stats is stats
    store = int(valid["store_id"].iloc[0])
    target = valid.copy()
    carnival = ((target["store_id"] == store) & target["is_open"].astype(bool)).to_numpy().nonzero()[0][:1]
    target["days_from_carnival_monday"] = 1
    target.loc[carnival, "days_from_carnival_monday"] = 0

    def predict_with_memory(memory: float) -> np.ndarray:
        remembering = copy.deepcopy(stats)
        remembering.recent_store.loc[(slice(None), store), "store_log_sales_carnival_vs_year"] = memory
        fitted.model.offset_stats = remembering
        return fitted.predict(train, target)["sales_pred"].to_numpy()

    without, moved = predict_with_memory(0.0), predict_with_memory(-0.7)
    others = np.ones(len(target), bool)
    others[carnival] = False
    np.testing.assert_allclose(moved[others], without[others], rtol=1e-5)
    np.testing.assert_allclose(np.log1p(moved[carnival]) - np.log1p(without[carnival]), -0.7, atol=1e-4)
    fitted.model.params = {**fitted.model.params, "carnival_memory_offset": False}
    np.testing.assert_allclose(fitted.predict(train, target)["sales_pred"].to_numpy(), without, rtol=1e-5)
    assert create("lstm", profile="fast").fit(train).model.offset_stats is None


def test_lstm_weekday_level_target(frame):
    """target_level store_dow: the sales channel is the deviation from the store's weekday level (the synthetic
    weekday effects come back as offsets; Sunday, closed, keeps the store's level)."""
    hist = history_rows(frame)
    layout = lstm_windows.ChannelLayout.from_history(hist)
    scaler = lstm_windows.StoreScaler.from_history(hist, layout, "store_dow")
    offsets = scaler.sales_offset(np.full(7, 3), np.arange(1, 8))
    assert offsets[0] > offsets[1] > offsets[5] and offsets[6] == 0  # Monday 1.15 > Tuesday 1.0 > Saturday 0.9
    assert offsets[0] - offsets[1] == pytest.approx(np.log(1.15), abs=0.03)  # both weekdays have promo weeks
    start = hist["sale_date"].min()
    grid = lstm_windows.build_grid(np.unique(hist["store_id"]), start, 200, scaler, layout, hist)
    open_days = grid.y[..., lstm_windows.Y_WEIGHT] > 0
    monday = np.asarray(pd.date_range(start, periods=200).dayofweek == 0)[None, :] & open_days
    plain = lstm_windows.build_grid(np.unique(hist["store_id"]), start, 200,
                                    lstm_windows.StoreScaler.from_history(hist, layout), layout, hist)
    # Monday's mean scaled sales is about 0 around the weekday level, clearly above 0 around the store mean
    assert abs(grid.y[..., 0][monday].mean()) < 0.2 < plain.y[..., 0][monday].mean()
    with pytest.raises(ValueError, match="target_level"):
        lstm_windows.StoreScaler.from_history(hist, layout, "store_month")


# --------------------------------------------------------------------------------------------- training


@pytest.mark.parametrize("name", ALL_MODELS)
def test_train_and_forecast_writes_artifacts(name, frame, stats_table, tmp_path):
    tm = train(create(name, profile="fast"), frame, stats_table, ForecastSpec(horizon_days=HORIZON))
    assert re.fullmatch(r"\d{8}T\d{12}Z", tm.model_version)
    vdir = save_result(tm, tmp_path)
    assert vdir == tmp_path / name / tm.model_version
    assert vdir.is_dir() and str(vdir.resolve()) == tm.registry["artifact_path"]
    for f in ["forecast.parquet", "metrics.parquet", "meta.json"]:
        assert (vdir / f).is_file()
    assert any(p.name.startswith(("model", "lstm")) for p in vdir.iterdir())
    # forecast: exactly one row per plan store-day, contract columns
    plan = plan_rows(frame)
    fc = tm.forecast
    assert list(fc.columns) == FORECAST_COLUMNS
    assert len(fc) == len(plan)
    assert not fc.duplicated(["model_version", "store_id", "forecast_date"]).any()
    merged = plan.merge(fc, left_on=["store_id", "sale_date"], right_on=["store_id", "forecast_date"], how="left")
    assert merged["sales_pred"].notna().all()
    assert (fc["model"] == name).all() and (fc["model_version"] == tm.model_version).all()
    assert (fc["sales_lower"] <= fc["sales_pred"] + 1e-9).all()
    assert (fc["sales_pred"] <= fc["sales_upper"] + 1e-9).all()
    closed = ~merged["is_open"].to_numpy()
    assert (merged.loc[closed, ["sales_pred", "sales_lower", "sales_upper", "customers_pred"]].to_numpy() == 0).all()
    assert (merged.loc[~closed, "sales_upper"] > merged.loc[~closed, "sales_lower"]).any()
    # metrics
    m = tm.metrics
    assert list(m.columns) == ["model", "model_version", "split", "metric", "value"]
    assert set(m["metric"]) == {"rmspe", "rmse", "mae", "mape", "coverage_80"}
    assert list(dict.fromkeys(m["split"])) == ["backtest_1", "backtest_2", "validation"]
    assert len(m) == 3 * 5 and not m.duplicated(["split", "metric"]).any()
    v = m.loc[m["split"] == "validation"]
    rmspe = float(v.loc[v["metric"] == "rmspe", "value"].iloc[0])
    cov = m.loc[m["metric"] == "coverage_80", "value"]
    assert ((cov >= 0) & (cov <= 1)).all()
    assert 0 < rmspe < 1.0
    pd.testing.assert_frame_equal(pd.read_parquet(vdir / "metrics.parquet"), m)
    assert len(pd.read_parquet(vdir / "forecast.parquet")) == len(fc)
    # registry
    r = tm.registry
    hist = history_rows(frame)
    assert r["train_start"] == hist["sale_date"].min().date() and r["train_end"] == hist["sale_date"].max().date()
    assert r["n_train_rows"] == len(hist)
    assert r["params"] == json.loads(tm.registry_frame()["params"].iloc[0])
    meta = json.loads((vdir / "meta.json").read_text())
    assert meta["model_version"] == tm.model_version
    assert meta["fold_metrics"]["validation"]["rmspe"] == pytest.approx(rmspe)
    # the saved model loads and forecasts the plan the same way, with the store correction its metadata carries
    correction = StoreBiasCorrection.from_meta(meta)
    assert correction is not None and 0 <= correction.slope <= 1
    again = load_forecaster(vdir).predict(hist, plan)
    np.testing.assert_allclose(again["sales_pred"].to_numpy() * correction.factors(again["store_id"]),
                               fc["sales_pred"].to_numpy(), rtol=1e-5)


def test_two_runs_get_distinct_versions(frame, stats_table, tmp_path):
    a, b = (train(create("baseline"), frame, stats_table) for _ in range(2))
    save_result(a, tmp_path)
    save_result(b, tmp_path)
    assert a.model_version != b.model_version
    assert sorted(p.name for p in (tmp_path / "baseline").iterdir()) == sorted([a.model_version, b.model_version])


def test_prune_artifacts_keeps_the_newest_versions_per_model(tmp_path):
    versions = ["20261101T000000000000Z", "20261102T000000000000Z", "20261103T000000000000Z"]
    for model in ("random_forest", "lstm"):
        for v in versions:
            (tmp_path / model / v).mkdir(parents=True)
            (tmp_path / model / v / "model.joblib").write_bytes(b"x")
    (tmp_path / "lstm" / versions[0]).rename(tmp_path / "lstm" / "20261104T000000000000Z")  # lstm: 02, 03, 04
    deleted = prune_artifacts(tmp_path, keep=2)
    assert sorted(p.relative_to(tmp_path).as_posix() for p in deleted) == [
        f"lstm/{versions[1]}", f"random_forest/{versions[0]}"]
    assert sorted(p.name for p in (tmp_path / "random_forest").iterdir()) == versions[1:]
    assert sorted(p.name for p in (tmp_path / "lstm").iterdir()) == [versions[2], "20261104T000000000000Z"]
    assert prune_artifacts(tmp_path, keep=2) == []
    with pytest.raises(ValueError, match="at least 2"):
        prune_artifacts(tmp_path, keep=1)


def test_lightgbm_seeds_fitted_in_parallel_forecast_as_fitted_in_turn(split, stats_table):
    train, valid = split
    stats = stats_for(train, stats_table)
    in_turn = create("lightgbm", {"n_seeds": 3, "n_parallel_seeds": 1}, profile="fast").fit(train, stats)
    parallel = create("lightgbm", {"n_seeds": 3, "n_parallel_seeds": 2}, profile="fast").fit(train, stats)
    boosters = parallel.pipeline.named_steps["boosting"].boosters_
    assert [b.random_state for b in boosters] == [42, 43, 44]
    np.testing.assert_array_equal(in_turn.predict(train, valid)["sales_pred"],
                                  parallel.predict(train, valid)["sales_pred"])
