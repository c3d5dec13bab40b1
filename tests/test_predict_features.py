"""``serving.features.build_feature_rows`` (the features of POST /predict) on a published copy of a warehouse that
dbt built from synthetic data: the features are the mart's, because both are the dbt macro store_day_features.

* store-days of the mart come back exactly as the mart's rows, every feature column included;
* days after the plan and what-if values get the features a mart holding them would have: the reference is a
  second warehouse whose raw.plan holds the requested rows, built by dbt.
"""

from __future__ import annotations

import shutil

import duckdb
import numpy as np
import pandas as pd
import pytest

from ingestion.synthetic import generate_dataset
from serving.features import build_feature_rows
from serving.reader import open_published
from warehouse.dbt import build_warehouse, run_dbt
from warehouse.publish import publish_warehouse

# history-only columns: a requested row has no actuals and comes from the request
HISTORY_ONLY = ["is_history", "sales", "customers", "row_source"]
REQUEST = ["store_id", "sale_date", "is_open", "is_promo", "state_holiday", "is_school_holiday"]
MART = "marts.fct_store_daily_features"


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """8 synthetic stores (one refurbished in 2014), history 2014-01-01 .. 2015-07-31, a 42-day plan."""
    root = tmp_path_factory.mktemp("predict_features")
    generate_dataset(root / "raw", n_stores=8, start="2014-01-01", end="2015-07-31", horizon_days=42)
    build = root / "build.duckdb"
    build_warehouse(root / "raw", build)
    publish_warehouse(build, root / "published", source_run="test", schemas=("marts",))
    return {"root": root, "build": build, "published": root / "published"}


@pytest.fixture()
def con(warehouse):
    with open_published(warehouse["published"]) as con:
        yield con


def mart_rows(con: duckdb.DuckDBPyConnection, keys: pd.DataFrame | None = None) -> pd.DataFrame:
    """The mart's rows, all of them or those of ``keys`` (store_id, sale_date) in the order of ``keys``."""
    if keys is None:
        return con.execute(f"SELECT * FROM {MART} ORDER BY store_id, sale_date").df()
    con.register("wanted_keys", keys[["store_id", "sale_date"]].assign(k=np.arange(len(keys))))
    try:
        return con.execute(f"SELECT m.* FROM {MART} m JOIN wanted_keys w USING (store_id, sale_date) "
                           "ORDER BY w.k").df()
    finally:
        con.unregister("wanted_keys")


def assert_same_features(got: pd.DataFrame, expected: pd.DataFrame) -> None:
    features = [c for c in expected.columns if c not in HISTORY_ONLY]
    pd.testing.assert_frame_equal(got[features].reset_index(drop=True), expected[features].reset_index(drop=True))


def test_store_days_of_the_mart_come_back_as_the_mart_rows(con):
    mart = mart_rows(con)
    # every plan day and a sample of history days (the refurbished store's reopening among them), shuffled
    sample = pd.concat([mart[~mart["is_history"]], mart[mart["is_history"]].sample(1500, random_state=1),
                        mart[mart["days_since_reopening"] < 5]]).drop_duplicates(["store_id", "sale_date"])
    assert sample["days_since_reopening"].eq(0).any()
    sample = sample.sample(frac=1.0, random_state=2)

    got = build_feature_rows(con, sample[REQUEST])

    assert list(got.columns) == list(mart.columns)
    assert_same_features(got, sample)
    assert not got["is_history"].any() and got["sales"].isna().all() and got["customers"].isna().all()
    assert (got["row_source"] == "request").all()


def test_a_whole_store_timeline_comes_back_unchanged(con):
    mart = mart_rows(con)
    store = mart[mart["store_id"] == 3]
    assert_same_features(build_feature_rows(con, store[REQUEST]), store)


def what_if_request(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, dict]:
    """Ten days after the plan for stores 1 and 2 (closed Sunday, promo Mon-Fri of the first week, a state
    holiday, school holidays), and promo switched on for store 4 the day after one of its plan promo runs."""
    last_plan = con.execute(f"SELECT max(sale_date) FROM {MART}").fetchall()[0][0]
    days = pd.date_range(pd.Timestamp(last_plan) + pd.Timedelta(days=1), periods=10, freq="D")
    after = pd.MultiIndex.from_product([[1, 2], days], names=["store_id", "sale_date"]).to_frame(index=False)
    dow = after["sale_date"].dt.dayofweek
    first_week = after["sale_date"] < days[0] + pd.Timedelta(days=7)
    after["is_open"] = dow != 6
    after["is_promo"] = first_week & (dow < 5)
    after["state_holiday"] = np.where(after["sale_date"] == days[4], "a", "0")
    after["is_school_holiday"] = after["sale_date"] >= days[6]

    plan4 = mart_rows(con).query("store_id == 4 and not is_history")
    promo_end = plan4[plan4["is_promo_last_day"] & plan4["is_open"].shift(-1, fill_value=False)]
    day = promo_end["sale_date"].iloc[0] + pd.Timedelta(days=1)
    flipped = plan4.loc[plan4["sale_date"] == day, REQUEST].assign(is_promo=True)
    request = pd.concat([after, flipped], ignore_index=True)[REQUEST]
    return request, {"after": days, "flipped_day": day, "run_before": int(promo_end["promo_run_day"].iloc[0])}


def test_days_after_the_plan_and_what_ifs_match_a_mart_built_with_them(warehouse, con, tmp_path):
    request, info = what_if_request(con)
    got = build_feature_rows(con, request)

    # the reference: the same build with the request written into raw.plan, the mart rebuilt by dbt
    reference = tmp_path / "reference.duckdb"
    shutil.copy(warehouse["build"], reference)
    with duckdb.connect(str(reference)) as ref:
        ref.register("request_rows", request)
        ref.execute("""
            DELETE FROM raw.plan p USING request_rows r WHERE p.Store = r.store_id AND p.Date = r.sale_date;
            INSERT INTO raw.plan
            SELECT 100000 + row_number() OVER (), store_id, isodow(sale_date), sale_date, is_open::INTEGER,
                   is_promo::INTEGER, state_holiday, is_school_holiday::INTEGER
            FROM request_rows""")
    run_dbt(reference, ["run", "--select", "+fct_store_daily_features"])
    with duckdb.connect(str(reference), read_only=True) as ref:
        expected = mart_rows(ref, request)
    assert len(expected) == len(request)
    assert_same_features(got, expected)

    # (2) days after the plan: distance and run features computed, not NULL
    after = got[got["sale_date"].isin(info["after"])]
    nullable = {"competition_distance_m", "months_since_competition_open", "months_since_promo2_start",
                "promo2_cycle_month", "promo2_cycle_day"}  # NULL where Promo2 is not active
    assert after.drop(columns=[*HISTORY_ONLY, *nullable]).notna().all().all()
    store1 = after[after["store_id"] == 1].set_index("sale_date")
    assert store1.loc[store1["is_promo"], "promo_run_day"].tolist() == [1, 2, 3, 4, 5]
    assert store1.loc[info["after"][4], ["days_since_state_holiday", "days_until_state_holiday"]].tolist() == [0, 0]
    assert store1.loc[info["after"][6:], "school_holiday_run_day"].tolist() == [1, 2, 3, 4]
    sunday = store1.index[store1.index.dayofweek == 6][0]
    assert store1.loc[sunday + pd.Timedelta(days=1), "days_since_closed"] == 1

    # (3) what-if promo on the day after a promo run: the run goes on one more day
    flipped = got[(got["store_id"] == 4) & (got["sale_date"] == info["flipped_day"])].iloc[0]
    as_planned = mart_rows(con, pd.DataFrame({"store_id": [4], "sale_date": [info["flipped_day"]]})).iloc[0]
    assert not as_planned["is_promo"] and as_planned["promo_run_day"] == 0
    assert flipped["is_promo"] and flipped["promo_run_day"] == info["run_before"] + 1
    assert flipped["is_promo_last_day"] and not flipped["is_promo_first_day"]
    assert (flipped["days_since_promo"], flipped["days_until_promo"]) == (0, 0)


def test_a_store_day_requested_twice_gets_the_features_of_each_row(con):
    request, info = what_if_request(con)
    flipped = request[(request["store_id"] == 4) & (request["sale_date"] == info["flipped_day"])]
    as_planned = flipped.assign(is_promo=False)
    got = build_feature_rows(con, pd.concat([flipped, as_planned, flipped], ignore_index=True))
    alone = pd.concat([build_feature_rows(con, flipped), build_feature_rows(con, as_planned)] * 2)
    assert_same_features(got, alone.iloc[[0, 1, 2]])
    assert got["is_promo"].tolist() == [True, False, True]
