"""The leakage-free calendar / event features of marts.fct_store_daily_features (the columns after
the contract's 27; macros store_day_features, store_closure_spells, calendar_events; int_store_state_groups),
the served features (serving.features, the same macro) and the per-cut store statistics and recent sales
(int_feature_cuts, agg_store_sales_stats, agg_store_recent_sales), on tiny hand-made data. The pure rules (promo
runs, distances, event counts, Easter / Christmas, closure spells, recent-sales windows) are dbt unit tests beside
the models.

The data set (five stores, history 2014-12-01 .. 2015-04-30, raw.plan empty -> assumed calendar):
  state holidays (every store): 2014-12-25/26 'c', 2015-01-01 'a', Good Friday 2015-04-03 'b',
      Easter Monday 2015-04-06 'b'; store 3 also has Epiphany 2015-01-06 'a'.
  school holidays: stores 1, 2, 3, 5: 2015-03-30 .. 2015-04-10 (every calendar day);
      store 4: 2014-12-01 .. 2015-02-06 (68 days) instead.
  -> state groups {1, 2, 5}, {3}, {4}; store 5 has a history gap (no rows 2015-02-01 ..
      2015-03-05, 33 days: a refurbishment) that must not split it from stores 1 and 2.
  closed on Sundays and state holidays; store 2 also closed Tue 2015-01-20 .. Thu 2015-01-22
      (a 3-day long closure, reopening Fri 2015-01-23).
  promo Monday..Friday of even ISO weeks.
  competition: store 1 since Jan 2013, store 2 none, store 3 distance known / date unknown,
      store 4 opens Mar 2015; Promo2: store 1 since ISO week 1/2015 (Monday 2014-12-29,
      'Jan,Apr,Jul,Oct').
Easter Sunday 2015 is 2015-04-05.
"""

from __future__ import annotations

import sys
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from serving.features import build_feature_rows

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_dbt_models import (  # noqa: E402  (shared dbt helpers; no tests or fixtures imported)
    assert_ok,
    feature_row,
    load_raw,
    query,
    run_dbt,
    scalar,
)

STORES = [1, 2, 3, 4, 5]
HISTORY_START, HISTORY_END = pd.Timestamp("2014-12-01"), pd.Timestamp("2015-04-30")
COMMON_HOLIDAYS = {"2014-12-25": "c", "2014-12-26": "c", "2015-01-01": "a",
                   "2015-04-03": "b", "2015-04-06": "b"}
STORE5_GAP = ("2015-02-01", "2015-03-05")
STORE2_CLOSURE = ("2015-01-20", "2015-01-22")
STORE4_SCHOOL_HOLIDAYS = ("2014-12-01", "2015-02-06")  # 68 days: a run longer than any feature's reach

NEW_COLUMNS = [
    ("promo_run_day", "INTEGER"), ("is_promo_first_day", "BOOLEAN"), ("is_promo_last_day", "BOOLEAN"),
    ("days_since_promo", "INTEGER"), ("days_until_promo", "INTEGER"),
    ("days_until_christmas", "INTEGER"), ("days_since_christmas", "INTEGER"),
    ("days_until_easter", "INTEGER"), ("days_since_easter", "INTEGER"), ("days_from_carnival_monday", "INTEGER"),
    ("is_school_holiday_week", "BOOLEAN"), ("school_holiday_last_week", "BOOLEAN"),
    ("school_holiday_next_week", "BOOLEAN"), ("school_holiday_run_day", "INTEGER"),
    ("days_since_reopening", "INTEGER"), ("days_until_long_closure", "INTEGER"),
    ("is_after_refurbishment", "BOOLEAN"), ("competition_open_months_capped", "INTEGER"),
    ("months_since_promo2_start", "INTEGER"), ("promo2_cycle_month", "INTEGER"),
    ("days_since_start", "INTEGER"), ("day_of_year_sin", "DOUBLE"), ("day_of_year_cos", "DOUBLE"),
    ("week_of_month", "INTEGER"), ("days_until_month_end", "INTEGER"),
    ("weekdays_until_month_end", "INTEGER"), ("state_group", "INTEGER"),
    *[(f"{count}_{window}", "INTEGER") for count in ("promo_days", "state_holidays", "school_holidays", "closed_days")
      for window in ("this_week", "last_week", "next_week", "past_7", "next_7")],
    ("days_since_multi_day_closure", "INTEGER"), ("days_until_multi_day_closure", "INTEGER"),
    ("school_holiday_run_length", "INTEGER"), ("days_since_school_holiday", "INTEGER"),
    ("days_until_school_holiday", "INTEGER"), ("promo2_cycle_day", "INTEGER"),
]


def make_stores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Store": STORES,
            "StoreType": ["a", "b", "c", "d", "a"],
            "Assortment": ["a", "b", "c", "a", "a"],
            "CompetitionDistance": [500.0, np.nan, 300.0, 1000.0, 700.0],
            "CompetitionOpenSinceMonth": pd.array([1, None, None, 3, None], dtype="Int64"),
            "CompetitionOpenSinceYear": pd.array([2013, None, None, 2015, None], dtype="Int64"),
            "Promo2": [1, 0, 0, 0, 0],
            "Promo2SinceWeek": pd.array([1, None, None, None, None], dtype="Int64"),
            "Promo2SinceYear": pd.array([2015, None, None, None, None], dtype="Int64"),
            "PromoInterval": ["Jan,Apr,Jul,Oct", None, None, None, None],
        }
    )


def make_history() -> pd.DataFrame:
    dates = pd.date_range(HISTORY_START, HISTORY_END, freq="D")
    df = pd.MultiIndex.from_product([STORES, dates], names=["Store", "Date"]).to_frame(index=False)
    iso = df["Date"].dt.isocalendar()
    df["DayOfWeek"] = iso["day"].astype(int)
    day = df["Date"].dt.strftime("%Y-%m-%d")
    df["StateHoliday"] = day.map(COMMON_HOLIDAYS).fillna("0")
    df.loc[(df["Store"] == 3) & (day == "2015-01-06"), "StateHoliday"] = "a"
    school = np.where(df["Store"] == 4, day.between(*STORE4_SCHOOL_HOLIDAYS),
                      day.between("2015-03-30", "2015-04-10"))
    df["SchoolHoliday"] = school.astype(int)
    closed = (df["DayOfWeek"] == 7) | ((df["StateHoliday"] != "0") & (df["Store"] != 1))  # store 1 opens on them
    closed |= (df["Store"] == 2) & day.between(*STORE2_CLOSURE)
    df["Open"] = (~closed).astype(int)
    df["Promo"] = ((iso["week"] % 2 == 0) & (df["DayOfWeek"] <= 5)).astype(int)
    df = df[~((df["Store"] == 5) & day.between(*STORE5_GAP))]
    open_ = df["Open"] == 1
    df["Sales"] = np.where(open_, 1000 * df["Store"] + 10 * df["Date"].dt.day + 500 * df["Promo"], 0)
    df["Customers"] = np.where(open_, 100 + df["Date"].dt.day, 0)
    df = df.sort_values(["Date", "Store"], ascending=[False, True])
    return df[["Store", "DayOfWeek", "Date", "Sales", "Customers", "Open", "Promo",
               "StateHoliday", "SchoolHoliday"]].reset_index(drop=True)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("dbt_features")
    warehouse = workdir / "warehouse.duckdb"
    history = make_history()
    load_raw(warehouse, history, make_stores())
    assert_ok(run_dbt(workdir, warehouse, "build", "--exclude", "tag:forecast"))
    return {"warehouse": warehouse, "workdir": workdir, "history": history}


def rows(warehouse: Path, store_id: int, first: str, last: str, columns: str) -> pd.DataFrame:
    return query(
        warehouse,
        f"select sale_date, {columns} from marts.fct_store_daily_features "
        "where store_id = ? and sale_date between ? and ? order by sale_date",
        [store_id, first, last],
    )


# --------------------------------------------------------------------------- schema


def test_new_columns_follow_the_contract_columns(built):
    cols = query(
        built["warehouse"],
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and table_name = 'fct_store_daily_features' "
        "order by ordinal_position",
    )
    actual = list(cols.itertuples(index=False, name=None))
    assert len(actual) == 27 + 1 + len(NEW_COLUMNS)
    assert actual[27] == ("row_source", "VARCHAR")
    assert actual[28:] == NEW_COLUMNS


def test_new_features_have_no_nulls_except_promo2_months(built):
    nullable = {"months_since_promo2_start", "promo2_cycle_month", "promo2_cycle_day"}
    checks = ", ".join(f"count(*) filter (where {c} is null) as {c}" for c, _ in NEW_COLUMNS
                       if c not in nullable)
    nulls = query(built["warehouse"], f"select {checks} from marts.fct_store_daily_features").iloc[0]
    assert (nulls == 0).all(), nulls[nulls > 0]


# --------------------------------------------------------------------------- promo cycle


def test_promo_cycle_continues_into_the_assumed_plan(built):
    wh = built["warehouse"]
    # the assumed calendar repeats the two-week pattern: Mon 2015-05-04 (week 19) no promo,
    # Mon 2015-05-11 (week 20) promo
    r = feature_row(wh, 1, "2015-05-11")
    assert (r["is_history"], r["is_promo"], r["promo_run_day"], r["is_promo_first_day"]) == (
        False, True, 1, True)
    r = feature_row(wh, 1, "2015-05-06")  # Wednesday between Fri 1 May and Mon 11 May
    assert (r["days_since_promo"], r["days_until_promo"]) == (5, 5)
    # the last history day (Thu 30 April, week 18, promo) continues its run on Fri 1 May
    r = feature_row(wh, 1, "2015-04-30")
    assert (r["promo_run_day"], r["is_promo_last_day"]) == (4, False)
    assert feature_row(wh, 1, "2015-05-01")["is_promo_last_day"] == True  # noqa: E712


# --------------------------------------------------------------------------- school holidays


def test_school_holiday_weeks_and_runs(built):
    df = rows(built["warehouse"], 1, "2015-03-27", "2015-04-13",
              "is_school_holiday_week, school_holiday_last_week, school_holiday_next_week, "
              "school_holiday_run_day").set_index("sale_date")
    day = lambda s: pd.Timestamp(s)  # noqa: E731
    # Fri 27 March: the week before the holidays
    assert tuple(df.loc[day("2015-03-27"), ["is_school_holiday_week", "school_holiday_last_week",
                                             "school_holiday_next_week"]]) == (False, False, True)
    # Wed 8 April: second holiday week
    assert tuple(df.loc[day("2015-04-08"), ["is_school_holiday_week", "school_holiday_last_week",
                                             "school_holiday_next_week"]]) == (True, True, False)
    # Sat 11 April: holidays over, but the ISO week (Mon 6 .. Sun 12) had some
    assert tuple(df.loc[day("2015-04-11"), ["is_school_holiday_week", "school_holiday_run_day"]]) == (
        True, 0)
    # Mon 13 April: the week after
    assert tuple(df.loc[day("2015-04-13"), ["is_school_holiday_week", "school_holiday_last_week",
                                             "school_holiday_next_week"]]) == (False, True, False)
    run = df.loc[day("2015-03-30"):day("2015-04-11"), "school_holiday_run_day"].tolist()
    assert run == list(range(1, 13)) + [0]
    # the whole run's length on each of its days; store 4's 68-day run from its first row
    assert rows(built["warehouse"], 1, "2015-03-29", "2015-04-11", "school_holiday_run_length")[
        "school_holiday_run_length"].tolist() == [0] + [12] * 12 + [0]
    r = feature_row(built["warehouse"], 4, "2014-12-01")
    assert (r["school_holiday_run_day"], r["school_holiday_run_length"]) == (1, 68)


# --------------------------------------------------------------------------- closures / refurbishment


def test_refurbishment_reopen_distance(built):
    wh = built["warehouse"]
    df = rows(wh, 5, "2015-01-29", "2015-04-06",
              "days_since_reopening, days_until_long_closure, is_after_refurbishment")
    df = df.set_index("sale_date")
    day = lambda s: pd.Timestamp(s)  # noqa: E731
    # the gap has no rows; the last days before it look ahead to it
    assert df.loc[day("2015-01-29"):day("2015-01-31"), "days_until_long_closure"].tolist() == [3, 2, 1]
    assert not any(day("2015-02-01") <= d <= day("2015-03-05") for d in df.index)
    # reopening Friday 6 March
    assert df.loc[day("2015-03-06"), "days_since_reopening"] == 0
    assert df.loc[day("2015-03-10"), "days_since_reopening"] == 4
    assert df.loc[day("2015-04-06"), "days_since_reopening"] == 30  # capped
    after = df["is_after_refurbishment"]
    assert not after[:day("2015-03-05")].any()
    assert after[day("2015-03-06"):day("2015-04-04")].all()  # 30 days, reopening day included
    assert not after[day("2015-04-05"):].any()
    # stores without a refurbishment
    assert not scalar(wh, "select bool_or(is_after_refurbishment) from marts.fct_store_daily_features "
                          "where store_id <> 5")


def test_short_closure_reopen_distance(built):
    df = rows(built["warehouse"], 2, "2015-01-17", "2015-01-26",
              "is_open, days_since_reopening, days_until_long_closure")
    # Sat 17 .. Mon 26 January; closed Sun 18 and Tue 20 .. Thu 22
    assert df["is_open"].tolist() == [True, False, True, False, False, False, True, True, False, True]
    assert df["days_until_long_closure"].tolist() == [3, 2, 1, 0, 0, 0, 30, 30, 30, 30]
    assert df["days_since_reopening"].tolist() == [30] * 6 + [0, 1, 2, 3]
    # store 1's Christmas closure (2 days) is no long closure
    r = feature_row(built["warehouse"], 1, "2014-12-27")
    assert (r["days_since_reopening"], r["days_until_long_closure"]) == (30, 30)


# --------------------------------------------------------------------------- state groups


def test_state_groups_from_shared_holiday_dates(built):
    wh = built["warehouse"]
    groups = query(wh, "select store_id, state_group, n_stores_in_group "
                       "from intermediate.int_store_state_groups order by store_id")
    # {1, 2, 5} share every holiday date (store 5's gap does not split it off), store 3 has an
    # extra state holiday, store 4 other school holidays; numbered by their smallest store
    assert groups["state_group"].tolist() == [1, 1, 2, 3, 1]
    assert groups["n_stores_in_group"].tolist() == [3, 3, 1, 1, 3]
    fct = query(wh, "select store_id, min(state_group) as lo, max(state_group) as hi "
                    "from marts.fct_store_daily_features group by store_id order by store_id")
    assert fct["lo"].tolist() == fct["hi"].tolist() == [1, 1, 2, 3, 1]


# --------------------------------------------------------------------------- store attributes, trend


def test_competition_and_promo2_months(built):
    wh = built["warehouse"]
    assert feature_row(wh, 1, "2014-12-15")["competition_open_months_capped"] == 23
    assert feature_row(wh, 1, "2015-01-10")["competition_open_months_capped"] == 24
    assert feature_row(wh, 1, "2015-04-10")["competition_open_months_capped"] == 24
    assert feature_row(wh, 2, "2015-04-10")["competition_open_months_capped"] == 0  # none known
    assert feature_row(wh, 3, "2015-04-10")["competition_open_months_capped"] == 24  # date unknown
    assert feature_row(wh, 4, "2015-02-27")["competition_open_months_capped"] == 0  # not yet
    assert feature_row(wh, 4, "2015-04-10")["competition_open_months_capped"] == 1
    # store 1: Promo2 since ISO week 1/2015 = Monday 2014-12-29, months Jan, Apr, Jul, Oct
    r = feature_row(wh, 1, "2014-12-28")
    assert pd.isna(r["months_since_promo2_start"]) and pd.isna(r["promo2_cycle_month"])
    r = feature_row(wh, 1, "2014-12-29")
    assert (r["months_since_promo2_start"], r["promo2_cycle_month"]) == (0, 2)
    r = feature_row(wh, 1, "2015-03-15")
    assert (r["months_since_promo2_start"], r["promo2_cycle_month"]) == (3, 2)
    r = feature_row(wh, 1, "2015-04-15")
    assert (r["months_since_promo2_start"], r["promo2_cycle_month"], r["is_promo2_month"]) == (4, 0, True)
    r = feature_row(wh, 2, "2015-04-15")
    assert pd.isna(r["months_since_promo2_start"]) and pd.isna(r["promo2_cycle_month"])
    # the day in the cycle: days since 1 January (the latest PromoInterval month) on 29 December 2014 and
    # 15 March 2015, since 1 April on 15 April; NULL before Promo2 started
    days = rows(wh, 1, "2014-12-28", "2015-04-15", "promo2_cycle_day").set_index("sale_date")["promo2_cycle_day"]
    assert pd.isna(days[pd.Timestamp("2014-12-28")])
    assert days[pd.Timestamp("2014-12-29")] == (pd.Timestamp("2014-12-29") - pd.Timestamp("2014-10-01")).days
    assert days[pd.Timestamp("2015-03-15")] == (pd.Timestamp("2015-03-15") - pd.Timestamp("2015-01-01")).days
    assert (days[pd.Timestamp("2015-04-01")], days[pd.Timestamp("2015-04-15")]) == (0, 14)


def test_trend_and_seasonality_terms(built):
    wh = built["warehouse"]
    r = feature_row(wh, 1, "2014-12-01")
    assert (r["days_since_start"], r["week_of_month"]) == (0, 1)
    r = feature_row(wh, 3, "2015-01-31")
    assert (r["days_since_start"], r["week_of_month"]) == (61, 5)
    assert feature_row(wh, 3, "2015-01-08")["week_of_month"] == 2
    # pay-day position: the month's own length, February's 28 days included, and plan days alike
    assert [feature_row(wh, 2, d)["days_until_month_end"] for d in ("2015-01-08", "2015-01-31", "2015-02-27")] == [
        23, 0, 1]
    assert feature_row(wh, 1, "2015-06-11")["days_until_month_end"] == 19
    # the last weekday: a Friday before a weekend month end (31 January 2015 is a Saturday) counts 0
    assert [feature_row(wh, 2, d)["weekdays_until_month_end"] for d in ("2015-01-08", "2015-01-30", "2015-01-31",
                                                                        "2015-02-26", "2015-02-27")] == [16, 0, 0, 1, 0]
    assert feature_row(wh, 1, "2015-06-11")["weekdays_until_month_end"] == 13
    r = feature_row(wh, 1, "2015-06-11")  # last assumed-calendar day, day of year 162
    assert r["is_history"] == False and r["days_since_start"] == 192  # noqa: E712
    assert r["day_of_year_sin"] == pytest.approx(np.sin(2 * np.pi * 162 / 365.25))
    assert r["day_of_year_cos"] == pytest.approx(np.cos(2 * np.pi * 162 / 365.25))


# --------------------------------------------------------------------------- leakage


def test_event_features_do_not_depend_on_sales(built, tmp_path):
    """Scrambling sales and customers changes none of the new features."""
    history = built["history"].copy()
    rng = np.random.default_rng(0)
    history["Sales"] = rng.permutation(history["Sales"].to_numpy())
    history["Customers"] = rng.permutation(history["Customers"].to_numpy())
    warehouse = tmp_path / "warehouse.duckdb"
    load_raw(warehouse, history, make_stores())
    assert_ok(run_dbt(tmp_path, warehouse, "run", "--select", "+fct_store_daily_features"))
    cols = ", ".join(c for c, _ in NEW_COLUMNS)
    sql = f"select store_id, sale_date, {cols} from marts.fct_store_daily_features order by 1, 2"
    pd.testing.assert_frame_equal(query(built["warehouse"], sql), query(warehouse, sql))


# --------------------------------------------------------------------------- served features


def test_served_features_are_the_mart_rows(built):
    """serving.features evaluates the same macro (marts.serving_feature_query) over the requested days and the
    mart's rows around them: requested mart store-days come back as the mart's rows, all together and one at
    a time (only the rows around the day are read, so these days probe the edges of that reach)."""
    mart = query(built["warehouse"], "select * from marts.fct_store_daily_features order by store_id, sale_date")
    keys = mart.set_index(["store_id", "sale_date"])
    alone = [
        (5, "2015-03-06"), (5, "2015-04-04"), (5, "2015-04-05"),  # reopening after the refurbishment gap
        (5, "2015-01-29"),  # 3 days before the gap
        (2, "2015-01-17"), (2, "2015-01-23"),  # before and after store 2's 3-day closure
        (4, "2015-02-06"),  # day 68 of a school-holiday run
        (4, "2014-12-20"),  # inside that run, 48 days before its end (its length reads the rows up to there)
        (3, "2015-01-06"), (1, "2014-12-01"), (1, "2015-05-01"), (1, "2015-06-11"),  # holiday, first, plan
    ]
    requests = [mart] + [keys.loc[[(store, pd.Timestamp(day))]].reset_index() for store, day in alone]
    assert requests[alone.index((4, "2015-02-06")) + 1]["school_holiday_run_day"].item() == 68
    features = [c for c in mart.columns if c not in ("is_history", "sales", "customers", "row_source")]
    with duckdb.connect(str(built["warehouse"]), read_only=True) as con:
        for request in requests:
            got = build_feature_rows(con, request)
            assert list(got.columns) == list(mart.columns)
            # (a single row has no NULL to make pandas pick a nullable integer dtype: values only)
            pd.testing.assert_frame_equal(got[features], request[features].reset_index(drop=True),
                                          check_dtype=request is mart)


# --------------------------------------------------------------------------- store sales statistics


def expected_stats(history: pd.DataFrame, cut: pd.Timestamp) -> pd.DataFrame:
    h = history[(history["Date"] < cut) & (history["Date"] >= cut - pd.Timedelta(days=364))
                & (history["Open"] == 1) & (history["Sales"] > 0)]
    return h.groupby(["Store", "DayOfWeek", "Promo"]).agg(
        n=("Sales", "size"), mean=("Sales", "mean"), median=("Sales", "median"),
        spc=("Sales", "sum")).reset_index().assign(
        spc=lambda d: d["spc"] / h.groupby(["Store", "DayOfWeek", "Promo"])["Customers"].sum().to_numpy())


def test_store_sales_stats_use_only_days_before_each_cut(built):
    wh, history = built["warehouse"], built["history"]
    # the cuts: the day after the last history date and every 42 days before it (3 backtest folds)
    cuts = query(wh, "select * from intermediate.int_feature_cuts order by folds_before_end")
    assert [str(d)[:10] for d in cuts["feature_cut_date"]] == ["2015-05-01", "2015-03-20", "2015-02-06", "2014-12-26"]
    assert list(cuts["cut_kind"]) == ["forecast", "validation", "backtest", "backtest"]  # 4 cuts: no earlier block
    all_stats = query(wh, "select * from marts.agg_store_sales_stats")
    assert set(pd.to_datetime(all_stats["feature_cut_date"])) == set(pd.to_datetime(cuts["feature_cut_date"]))

    cut = pd.Timestamp("2015-03-20")
    stats = all_stats[pd.to_datetime(all_stats["feature_cut_date"]) == cut]
    fine = stats[stats["grain"] == "store_dow_promo"].sort_values(["store_id", "day_of_week", "is_promo"])
    exp = expected_stats(history, cut)
    assert len(fine) == len(exp)
    np.testing.assert_array_equal(fine["n_days_year"], exp["n"])
    np.testing.assert_allclose(fine["sales_mean_year"], exp["mean"])
    np.testing.assert_allclose(fine["sales_median_year"], exp["median"])
    np.testing.assert_allclose(fine["sales_per_customer_year"], exp["spc"])
    # quarter window: the 91 days before the cut
    q = history[(history["Date"] < cut) & (history["Date"] >= cut - pd.Timedelta(days=91))
                & (history["Open"] == 1) & (history["Sales"] > 0)]
    s1 = stats[(stats["grain"] == "store") & (stats["store_id"] == 1)].iloc[0]
    q1 = q[q["Store"] == 1]
    assert s1["n_days_quarter"] == len(q1)
    assert s1["sales_mean_quarter"] == pytest.approx(q1["Sales"].mean())
    assert s1["customers_median_quarter"] == pytest.approx(q1["Customers"].median())
    assert s1["log_sales_mean_quarter"] == pytest.approx(np.log1p(q1["Sales"]).mean())
    # open share: store 2 (closed Sundays, holidays and three extra days) over all its rows before the cut
    h2_all = history[(history["Store"] == 2) & (history["Date"] < cut)]
    s2 = stats[(stats["grain"] == "store") & (stats["store_id"] == 2)].iloc[0]
    assert s2["open_share_year"] == pytest.approx((h2_all["Open"] == 1).mean())
    # month effect: the month's mean log sales minus the store's, shrunk by n / (n + 10)
    y1 = history[(history["Store"] == 1) & (history["Date"] < cut) & (history["Open"] == 1) & (history["Sales"] > 0)]
    jan = y1[y1["Date"].dt.month == 1]
    m1 = stats[(stats["grain"] == "store_month") & (stats["store_id"] == 1) & (stats["month"] == 1)].iloc[0]
    effect = (np.log1p(jan["Sales"]).mean() - np.log1p(y1["Sales"]).mean()) * len(jan) / (len(jan) + 10)
    assert m1["month_log_sales_effect"] == pytest.approx(effect)
    # rolled-up grains
    assert set(stats["grain"]) == {"store", "store_dow", "store_promo", "store_dow_promo", "store_month"}
    promo = stats[(stats["grain"] == "store_promo") & (stats["store_id"] == 2)].set_index("is_promo")
    h2 = history[(history["Store"] == 2) & (history["Date"] < cut) & (history["Open"] == 1)]
    assert promo.loc[True, "sales_mean_year"] == pytest.approx(h2.loc[h2["Promo"] == 1, "Sales"].mean())


# --------------------------------------------------------------------------- recent sales per cut


def expected_recent_sales(history: pd.DataFrame, cut: pd.Timestamp) -> tuple[pd.DataFrame, pd.DataFrame]:
    """agg_store_recent_sales at ``cut`` recomputed in pandas: (store x weekday x promo rows, store rows)."""
    selling = history[(history["Open"] == 1) & (history["Sales"] > 0) & (history["Date"] < cut)]
    selling = pd.DataFrame({"store_id": selling["Store"], "day_of_week": selling["DayOfWeek"],
                            "is_promo": selling["Promo"] == 1, "log_sales": np.log1p(selling["Sales"]),
                            "days": (cut - selling["Date"]).dt.days})
    keys = ["store_id", "day_of_week", "is_promo"]
    year = selling[selling["days"] <= 364]
    weeks_8 = year[year["days"] <= 56]
    fine = pd.DataFrame({
        "n_days_year": year.groupby(keys).size(),
        "log_sales_mean_year": year.groupby(keys)["log_sales"].mean(),
        "n_days_8_weeks": weeks_8.groupby(keys).size(),
        "log_sales_mean_8_weeks": weeks_8.groupby(keys)["log_sales"].mean(),
        "log_sales_last": year.sort_values("days").groupby(keys)["log_sales"].first(),
        "days_since_last": year.groupby(keys)["days"].min(),
    }).sort_index()
    fine["n_days_8_weeks"] = fine["n_days_8_weeks"].fillna(0)

    def store_mean(lo: int, hi: int) -> pd.Series:
        return selling[selling["days"].between(lo, hi)].groupby("store_id")["log_sales"].mean()

    store = pd.DataFrame({"store_log_sales_mean_4_weeks": store_mean(1, 28), "store_log_sales_mean_quarter": store_mean(1, 91),
                          "store_log_sales_mean_year": store_mean(1, 364),
                          "store_log_sales_mean_quarter_year_ago": store_mean(365, 455)})
    store["store_log_sales_trend"] = store["store_log_sales_mean_quarter"] - store["store_log_sales_mean_quarter_year_ago"]
    return fine, store


def test_recent_sales_at_every_cut_are_the_days_before_it(built):
    wh, history = built["warehouse"], built["history"]
    recent = query(wh, "select * from marts.agg_store_recent_sales")
    recent["feature_cut_date"] = pd.to_datetime(recent["feature_cut_date"])
    cuts = pd.to_datetime(query(wh, "select feature_cut_date from intermediate.int_feature_cuts")["feature_cut_date"])
    assert set(recent["feature_cut_date"]) == set(cuts)
    for cut in cuts:
        fine, store = expected_recent_sales(history, cut)
        got = recent[recent["feature_cut_date"] == cut].set_index(["store_id", "day_of_week", "is_promo"]).sort_index()
        assert list(got.index) == list(fine.index), cut
        for col in fine.columns:
            np.testing.assert_allclose(got[col].to_numpy(float), fine[col].to_numpy(float), err_msg=f"{cut:%F} {col}")
        by_store = got.groupby(level="store_id").first()
        for col in store.columns:
            np.testing.assert_allclose(by_store[col].to_numpy(float), store[col].reindex(by_store.index).to_numpy(float),
                                       err_msg=f"{cut:%F} {col}")
        np.testing.assert_allclose(got["log_sales_last_vs_year"], got["log_sales_last"] - got["log_sales_mean_year"])
    # store 5's refurbishment gap (no rows 1 February .. 5 March): at the 20 March cut its 8 weeks have fewer days
    s5 = recent[(recent["store_id"] == 5) & (recent["feature_cut_date"] == pd.Timestamp("2015-03-20"))]
    s1 = recent[(recent["store_id"] == 1) & (recent["feature_cut_date"] == pd.Timestamp("2015-03-20"))]
    assert s5["n_days_8_weeks"].sum() < s1["n_days_8_weeks"].sum()


def _memory_at_cuts(built, columns: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(agg_store_recent_sales' ``columns`` per cut and store, the raw history)."""
    recent = query(built["warehouse"],
                   f"select feature_cut_date, store_id, {columns} from marts.agg_store_recent_sales")
    recent["feature_cut_date"] = pd.to_datetime(recent["feature_cut_date"])
    return recent.groupby(["feature_cut_date", "store_id"]).first(), built["history"]


def _selling_days_before(history: pd.DataFrame, store: int, cut: pd.Timestamp) -> pd.DataFrame:
    return history[(history["Store"] == store) & (history["Date"] < cut) & (history["Open"] == 1)
                   & (history["Sales"] > 0)]


def test_carnival_memory_is_the_last_carnival_monday_and_tuesday_before_each_cut(built):
    """The store's log sales on the last carnival Monday (2015-02-16) and Tuesday before a cut, each against its
    weekday x promo mean of the year before the cut; NULL at cuts without that day before them."""
    by_cut, history = _memory_at_cuts(built, "store_log_sales_carnival_vs_year as monday, "
                                             "store_log_sales_carnival_tuesday_vs_year as tuesday")
    checked = 0
    for (cut, store), got in by_cut.iterrows():
        for day, column in ((pd.Timestamp("2015-02-16"), "monday"), (pd.Timestamp("2015-02-17"), "tuesday")):
            h = _selling_days_before(history, store, cut)
            on_day = h[h["Date"] == day]
            if on_day.empty:
                assert pd.isna(got[column]), (cut, store, column)
                continue
            same = h[(h["DayOfWeek"] == day.isoweekday()) & (h["Promo"] == on_day["Promo"].item())
                     & (h["Date"] >= cut - pd.Timedelta(days=364))]
            expected = np.log1p(on_day["Sales"].item()) - np.log1p(same["Sales"]).mean()
            assert got[column] == pytest.approx(expected), (cut, store, column)
            checked += 1
    assert checked > 0


def test_holiday_memory_is_the_stores_state_holidays_before_each_cut(built):
    """The store's mean log sales on the state holidays it sold on in the 455 days before a cut, each against its
    weekday x promo mean of the year before the cut; NULL for the stores closed on every holiday."""
    by_cut, history = _memory_at_cuts(built, "store_log_sales_state_holiday_vs_year as memory")
    checked = 0
    for (cut, store), got in by_cut.iterrows():
        h = _selling_days_before(history, store, cut)
        holidays = h[(h["StateHoliday"] != "0") & (h["Date"] >= cut - pd.Timedelta(days=455))]
        if holidays.empty:
            assert pd.isna(got["memory"]), (cut, store)
            continue
        year = h[h["Date"] >= cut - pd.Timedelta(days=364)]
        level = np.log1p(year["Sales"]).groupby([year["DayOfWeek"], year["Promo"]]).mean()
        expected = np.mean([np.log1p(row.Sales) - level[(row.DayOfWeek, row.Promo)] for row in holidays.itertuples()])
        assert got["memory"] == pytest.approx(expected), (cut, store)
        checked += 1
    assert checked > 0 and by_cut.loc[by_cut.index.get_level_values("store_id") != 1, "memory"].isna().all()


def test_recent_sales_agree_with_the_store_statistics_at_fold_cuts(built):
    """The windows both models compute mean the same days: at a fold cut the year's weekday x promo means and the
    store's quarter and year means equal agg_store_sales_stats'."""
    pairs = query(built["warehouse"], """
        select recent.log_sales_mean_year as recent_year, stats.log_sales_mean_year as stats_year,
               recent.store_log_sales_mean_quarter, store.log_sales_mean_quarter,
               recent.store_log_sales_mean_year, store.log_sales_mean_year as store_year
        from marts.agg_store_recent_sales as recent
        inner join marts.agg_store_sales_stats as stats
            on stats.grain = 'store_dow_promo' and recent.feature_cut_date = stats.feature_cut_date
            and recent.store_id = stats.store_id and recent.day_of_week = stats.day_of_week
            and recent.is_promo = stats.is_promo
        inner join marts.agg_store_sales_stats as store
            on store.grain = 'store' and recent.feature_cut_date = store.feature_cut_date
            and recent.store_id = store.store_id""")
    n_rows = scalar(built["warehouse"], "select count(*) from marts.agg_store_recent_sales")
    assert len(pairs) == n_rows > 0  # every cut is a fold cut here, and every row has its statistics
    np.testing.assert_allclose(pairs["recent_year"], pairs["stats_year"])
    np.testing.assert_allclose(pairs["store_log_sales_mean_quarter"], pairs["log_sales_mean_quarter"])
    np.testing.assert_allclose(pairs["store_log_sales_mean_year"], pairs["store_year"])


def test_recent_sales_ignore_days_from_their_cut_on(built, tmp_path):
    """Scrambling the sales from 6 February 2015 on leaves every cut up to it unchanged, and with one backtest fold
    the cuts before the validation's are training blocks (recent sales only, no store statistics)."""
    history = built["history"].copy()
    later = history["Date"] >= pd.Timestamp("2015-02-06")
    rng = np.random.default_rng(1)
    history.loc[later, "Sales"] = rng.permutation(history.loc[later, "Sales"].to_numpy()) * 3
    warehouse = tmp_path / "warehouse.duckdb"
    load_raw(warehouse, history, make_stores())
    assert_ok(run_dbt(tmp_path, warehouse, "run", "--select", "+agg_store_recent_sales", "+agg_store_sales_stats",
                      "--vars", '{"backtest_folds": 1}'))
    cuts = query(warehouse, "select * from intermediate.int_feature_cuts order by folds_before_end")
    assert list(cuts["cut_kind"]) == ["forecast", "validation", "training_block", "training_block"]
    assert scalar(warehouse, "select count(distinct feature_cut_date) from marts.agg_store_sales_stats") == 2
    sql = "select * from marts.agg_store_recent_sales where feature_cut_date <= '2015-02-06' order by all"
    before = query(built["warehouse"], sql)
    assert set(pd.to_datetime(before["feature_cut_date"]).dt.strftime("%Y-%m-%d")) == {"2014-12-26", "2015-02-06"}
    pd.testing.assert_frame_equal(before, query(warehouse, sql))
    moved = "select store_log_sales_mean_4_weeks from marts.agg_store_recent_sales where feature_cut_date = '2015-03-20' order by all"
    assert not query(built["warehouse"], moved).equals(query(warehouse, moved))
