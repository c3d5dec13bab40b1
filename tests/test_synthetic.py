"""Tests of the embedded synthetic Rossmann-layout data (small and short, so they stay fast)."""

from __future__ import annotations

import time

import pandas as pd
import pytest

from ingestion.synthetic import (STORE_COLUMNS, TEST_COLUMNS, TRAIN_COLUMNS, PROMO_INTERVALS,
                                   generate_dataset, generate_frames, main)

N_STORES, START, END, HORIZON = 6, "2014-01-01", "2014-06-30", 14
KW = dict(n_stores=N_STORES, start=START, end=END, horizon_days=HORIZON, seed=7)


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict:
    return generate_dataset(tmp_path_factory.mktemp("synth"), **KW)


@pytest.fixture(scope="module")
def frames(files) -> dict[str, pd.DataFrame]:
    """The files read back as the warehouse reads them (StateHoliday as text)."""
    text = {"StateHoliday": str}
    return {"train": pd.read_csv(files["train"], dtype=text), "store": pd.read_csv(files["store"]),
            "test": pd.read_csv(files["test"], dtype=text)}


@pytest.fixture(scope="module")
def default_frames() -> dict[str, pd.DataFrame]:
    return generate_frames()


@pytest.fixture(scope="module")
def open_days(frames) -> pd.DataFrame:
    train = frames["train"]
    return train[train.Open == 1]


def test_same_seed_gives_byte_identical_files(tmp_path, files):
    again = generate_dataset(tmp_path / "again", **KW)
    assert set(again) == {"train", "store", "test"}
    for key, path in files.items():
        assert again[key].read_bytes() == path.read_bytes(), key
    other = generate_dataset(tmp_path / "other", **{**KW, "seed": 8})
    assert other["train"].read_bytes() != files["train"].read_bytes()


def test_columns_and_types_as_kaggle(frames):
    train, store, test = frames["train"], frames["store"], frames["test"]
    assert list(train.columns) == TRAIN_COLUMNS
    assert list(store.columns) == STORE_COLUMNS
    assert list(test.columns) == TEST_COLUMNS
    for col in ["Store", "DayOfWeek", "Sales", "Customers", "Open", "Promo", "SchoolHoliday"]:
        assert pd.api.types.is_integer_dtype(train[col]), col
    for col in ["Id", "Store", "DayOfWeek", "Open", "Promo", "SchoolHoliday"]:
        assert pd.api.types.is_integer_dtype(test[col]), col
    assert set(train.Open) <= {0, 1} and set(train.Promo) <= {0, 1} and set(train.SchoolHoliday) <= {0, 1}
    # Dates parse as ISO dates, DayOfWeek is Kaggle's 1=Mon..7=Sun, rows newest first then by store.
    dates = pd.to_datetime(train.Date, format="%Y-%m-%d")
    assert (train.DayOfWeek == dates.dt.day_of_week + 1).all()
    assert dates.is_monotonic_decreasing
    assert (train.groupby("Date", sort=False).Store.apply(lambda s: s.is_monotonic_increasing)).all()
    assert dates.min() == pd.Timestamp(START) and dates.max() == pd.Timestamp(END)
    assert not train.duplicated(["Store", "Date"]).any()
    assert set(store.Store) == set(train.Store) == set(range(1, N_STORES + 1))
    assert set(store.StoreType) <= set("abcd") and set(store.Assortment) <= set("abc")
    assert set(store.PromoInterval.dropna()) <= set(PROMO_INTERVALS)


def test_state_holiday_values(frames):
    train, test = frames["train"], frames["test"]
    assert set(train.StateHoliday) <= {"0", "a", "b", "c"}
    assert set(test.StateHoliday) <= {"0", "a", "b", "c"}
    assert {"0", "a", "b"} <= set(train.StateHoliday)  # the range has May 1 and Easter
    on_easter_or_christmas = train[train.StateHoliday.isin(["b", "c"])]
    assert (on_easter_or_christmas.Open == 0).all()


def test_store_csv_has_kaggle_blanks(files, frames):
    store = frames["store"]
    assert ",," in files["store"].read_text()
    no_promo2 = store[store.Promo2 == 0]
    assert len(no_promo2) and no_promo2[["Promo2SinceWeek", "Promo2SinceYear", "PromoInterval"]].isna().all().all()
    assert store.loc[store.Promo2 == 1, ["Promo2SinceWeek", "Promo2SinceYear", "PromoInterval"]].notna().all().all()


def test_store_csv_blanks_at_default_size(default_frames):
    full = default_frames["store"]
    assert full.CompetitionDistance.isna().any() and full.CompetitionOpenSinceYear.isna().any()


def test_plan_covers_every_store_and_day_after_history(frames):
    train, test = frames["train"], frames["test"]
    assert "Sales" not in test.columns and "Customers" not in test.columns
    plan_dates = pd.to_datetime(test.Date)
    assert plan_dates.min() > pd.to_datetime(train.Date).max()
    expected = pd.date_range(pd.Timestamp(END) + pd.Timedelta(days=1), periods=HORIZON)
    assert set(plan_dates) == set(expected)
    assert len(test) == N_STORES * HORIZON and not test.duplicated(["Store", "Date"]).any()
    assert set(test.Store) == set(range(1, N_STORES + 1))
    assert test.Id.tolist() == list(range(1, len(test) + 1))


def test_plan_follows_the_history_calendar():
    """The plan of one run equals the calendar columns of a run whose history goes on further."""
    plan = generate_frames(**KW)["test"]
    later = generate_frames(**{**KW, "start": "2014-03-01", "end": "2014-07-31", "horizon_days": 0})["train"]
    both = plan.merge(later, on=["Store", "Date"], suffixes=("_plan", "_hist"))
    assert len(both) == len(plan)
    for col in ["DayOfWeek", "Open", "Promo", "StateHoliday", "SchoolHoliday"]:
        assert (both[f"{col}_plan"] == both[f"{col}_hist"]).all(), col


def test_closed_days_have_no_sales_or_customers(frames, open_days):
    closed = frames["train"][frames["train"].Open == 0]
    assert len(closed) and (closed.Sales == 0).all() and (closed.Customers == 0).all()
    selling = open_days[open_days.Sales > 0]
    assert (selling.Customers > 0).all()
    assert (open_days.Sales > 0).mean() > 0.99  # only a handful of open days report zero sales


def test_promo_lifts_sales_more_than_customers(open_days):
    means = open_days.groupby("Promo")[["Sales", "Customers"]].mean()
    sales_lift = means.Sales[1] / means.Sales[0] - 1
    customer_lift = means.Customers[1] / means.Customers[0] - 1
    assert 0.1 < sales_lift < 0.8
    assert 0 < customer_lift < sales_lift


def test_promo_runs_on_weekdays_only_and_shared_by_stores(frames):
    train = frames["train"]
    assert (train.loc[train.DayOfWeek >= 6, "Promo"] == 0).all()
    assert (train.groupby("Date").Promo.nunique() == 1).all()
    assert 0.2 < train.Promo.mean() < 0.6


def test_most_stores_close_on_sundays(frames):
    sundays = frames["train"][frames["train"].DayOfWeek == 7]
    open_share = sundays.groupby("Store").Open.mean()
    assert (open_share == 0).sum() >= N_STORES // 2
    assert sundays.Open.mean() < 0.5


def test_customers_track_sales_but_not_perfectly(open_days, default_frames):
    # Within a store customers follow sales closely; the basket size still moves day to day.
    per_store = open_days.groupby("Store")[["Sales", "Customers"]].corr().xs("Sales", level=1).Customers
    assert (per_store > 0.8).all() and (per_store < 0.99).all()
    # Across stores baskets differ too (few stores make that a matter of luck, so pool the default set).
    train = default_frames["train"]
    pooled = train.loc[train.Open == 1, ["Sales", "Customers"]].corr().iloc[0, 1]
    assert 0.6 < pooled < 0.95


def test_default_size_is_fast_and_complete(default_frames):
    t0 = time.perf_counter()
    generate_frames()
    assert time.perf_counter() - t0 < 5
    train, test = default_frames["train"], default_frames["test"]
    assert train.Store.nunique() == 60 and len(test) == 60 * 42
    assert (train.Date.min(), train.Date.max()) == ("2013-01-01", "2015-07-31")
    rows_per_store = train.groupby("Store").size()
    assert (rows_per_store < rows_per_store.max() - 60).any()  # refurbishment gaps, as in Kaggle
    assert ((train.Open == 1) & (train.Sales == 0)).any()      # a handful of open days without sales


def test_cli_writes_files(tmp_path, capsys):
    assert main(["--out", str(tmp_path), "--stores", "3", "--start", "2015-01-01", "--end", "2015-02-28",
                 "--horizon", "7", "--seed", "1"]) == 0
    out = capsys.readouterr().out
    for name in ["train.csv", "store.csv", "test.csv"]:
        assert (tmp_path / name).is_file() and name in out
    assert len(pd.read_csv(tmp_path / "test.csv")) == 3 * 7
