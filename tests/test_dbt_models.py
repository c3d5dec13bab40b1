"""Tests of the dbt project (dbt_project/) on tiny hand-made raw tables.

Every scenario gets its own DuckDB warehouse, target path and log path under pytest's
tmp_path, and dbt runs in a subprocess with WAREHOUSE_PATH pointing at that warehouse,
so tests never touch data/ or dbt_project/target and do not collide.

The tiny data set (four stores, 2013-01-01 .. 2013-03-31):
  store 1  'c'/'a', competitor 1270 m since Feb 2013, no Promo2 (PromoInterval is the string
           'NULL' as in store.csv); one open day with zero sales (2013-01-15).
  store 2  'a'/'c', competition distance blank, Promo2 since ISO week 5/2013 ('Feb,May,Aug,Nov').
  store 3  'd'/'c', competitor 500 m with unknown opening, Promo2 since week 10/2013
           ('Mar,Jun,Sept,Dec'); no rows 2013-02-10 .. 2013-02-20 (refurbishment gap).
  store 4  'a'/'a', history only in March 2013 and closed all month (no customers at all),
           Promo2 since week 1/2013 ('Jan,Apr,Jul,Oct').
Every store is closed on Sundays and on the state holidays 2013-01-01 ('a') and 2013-03-29
('b', Good Friday); promo runs Monday..Friday of even ISO weeks; school holidays 2013-02-04..08.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ingestion.load import load_incoming, promote_incoming
from ingestion.raw_layout import RAW_COLUMNS, create_table_sql
from warehouse.dbt import dbt_executable
from warehouse.writeback import ensure_ml_tables

REPO_ROOT = Path(__file__).resolve().parents[1]
PROJECT_DIR = REPO_ROOT / "dbt_project"

HISTORY_START = pd.Timestamp("2013-01-01")
HISTORY_END = pd.Timestamp("2013-03-31")
HORIZON_DAYS = 42
STATE_HOLIDAYS = {pd.Timestamp("2013-01-01"): "a", pd.Timestamp("2013-03-29"): "b"}
STORE3_GAP = (pd.Timestamp("2013-02-10"), pd.Timestamp("2013-02-20"))

RAW_DDL = ";\n".join(["CREATE SCHEMA IF NOT EXISTS raw", *(create_table_sql(t) for t in RAW_COLUMNS)])


# --------------------------------------------------------------------------- helpers


def _dbt_executable() -> str:
    try:
        return dbt_executable()
    except RuntimeError:
        pytest.skip("dbt executable not found")


def run_dbt(workdir: Path, warehouse: Path, *args: str) -> subprocess.CompletedProcess:
    """Run `dbt <args>` against `warehouse` with target/log paths inside `workdir`."""
    env = {
        **os.environ,
        "WAREHOUSE_PATH": str(warehouse),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DBT_USE_COLORS": "false",
    }
    cmd = [
        _dbt_executable(),
        *args,
        "--project-dir", str(PROJECT_DIR),
        "--profiles-dir", str(PROJECT_DIR),
        "--target-path", str(workdir / "target"),
        "--log-path", str(workdir / "logs"),
    ]
    return subprocess.run(cmd, env=env, cwd=workdir, capture_output=True, text=True, timeout=600)


def assert_ok(result: subprocess.CompletedProcess) -> None:
    assert result.returncode == 0, f"dbt failed:\n{result.stdout[-6000:]}\n{result.stderr[-3000:]}"


def run_results(workdir: Path) -> dict[str, str]:
    data = json.loads((workdir / "target" / "run_results.json").read_text())
    return {r["unique_id"]: r["status"] for r in data["results"]}


def make_stores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Store": [1, 2, 3, 4],
            "StoreType": ["c", "a", "d", "a"],
            "Assortment": ["a", "c", "c", "a"],
            "CompetitionDistance": [1270.0, np.nan, 500.0, 80.0],
            "CompetitionOpenSinceMonth": pd.array([2, None, None, 9], dtype="Int64"),
            "CompetitionOpenSinceYear": pd.array([2013, None, None, 2008], dtype="Int64"),
            "Promo2": [0, 1, 1, 1],
            "Promo2SinceWeek": pd.array([None, 5, 10, 1], dtype="Int64"),
            "Promo2SinceYear": pd.array([None, 2013, 2013, 2013], dtype="Int64"),
            # store.csv writes missing values as the string NULL
            "PromoInterval": ["NULL", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec", "Jan,Apr,Jul,Oct"],
        }
    )


def calendar_columns(df: pd.DataFrame) -> pd.DataFrame:
    """Add the tiny data set's calendar rules (vectorised) to a frame with Store and Date."""
    iso = df["Date"].dt.isocalendar()
    df["DayOfWeek"] = iso["day"].astype(int)
    df["StateHoliday"] = df["Date"].map(STATE_HOLIDAYS).fillna("0")
    df["Open"] = ((df["DayOfWeek"] != 7) & (df["StateHoliday"] == "0")).astype(int)
    df["Promo"] = ((iso["week"] % 2 == 0) & (df["DayOfWeek"] <= 5)).astype(int)
    df["SchoolHoliday"] = df["Date"].between("2013-02-04", "2013-02-08").astype(int)
    return df


def make_history() -> pd.DataFrame:
    dates = pd.date_range(HISTORY_START, HISTORY_END, freq="D")
    idx = pd.MultiIndex.from_product([[1, 2, 3, 4], dates], names=["Store", "Date"])
    df = calendar_columns(idx.to_frame(index=False))
    # store 3: refurbishment gap, rows missing
    df = df[~((df["Store"] == 3) & df["Date"].between(*STORE3_GAP))]
    # store 4: history only in March, closed all month
    df = df[(df["Store"] != 4) | (df["Date"] >= "2013-03-01")]
    store4 = df["Store"] == 4
    df.loc[store4, ["Open", "Promo"]] = 0
    df["Sales"] = np.where(df["Open"] == 1, 1000 * df["Store"] + 10 * df["Date"].dt.day, 0)
    df["Customers"] = np.where(df["Open"] == 1, 100 + df["Date"].dt.day, 0)
    # an open day with zero sales (a real-data quirk)
    quirk = (df["Store"] == 1) & (df["Date"] == "2013-01-15")
    df.loc[quirk, ["Sales", "Customers"]] = 0
    # raw files come newest first
    df = df.sort_values(["Date", "Store"], ascending=[False, True])
    return df[["Store", "DayOfWeek", "Date", "Sales", "Customers", "Open", "Promo",
               "StateHoliday", "SchoolHoliday"]].reset_index(drop=True)


def make_plan() -> pd.DataFrame:
    """A supplied plan for stores 1 and 2, 2013-04-01 .. 2013-04-14 (Easter Monday a holiday)."""
    dates = pd.date_range("2013-04-01", "2013-04-14", freq="D")
    idx = pd.MultiIndex.from_product([[1, 2], dates], names=["Store", "Date"])
    df = calendar_columns(idx.to_frame(index=False))
    easter_monday = df["Date"] == "2013-04-01"
    df.loc[easter_monday, "StateHoliday"] = "a"
    df.loc[easter_monday, "Open"] = 0
    df["Open"] = df["Open"].astype("Int64")
    df.loc[(df["Store"] == 1) & (df["Date"] == "2013-04-02"), "Open"] = pd.NA  # unknown -> open
    df["Id"] = np.arange(1, len(df) + 1)
    return df[["Id", "Store", "DayOfWeek", "Date", "Open", "Promo", "StateHoliday", "SchoolHoliday"]]


def load_raw(warehouse: Path, sales: pd.DataFrame, stores: pd.DataFrame,
             plan: pd.DataFrame | None = None) -> None:
    with duckdb.connect(str(warehouse)) as con:
        con.execute(RAW_DDL)
        con.register("sales_df", sales)
        con.register("stores_df", stores)
        con.execute("INSERT INTO raw.sales SELECT * FROM sales_df")
        con.execute("INSERT INTO raw.stores SELECT * FROM stores_df")
        if plan is not None:
            con.register("plan_df", plan)
            con.execute("INSERT INTO raw.plan SELECT * FROM plan_df")


def query(warehouse: Path, sql: str, params=None) -> pd.DataFrame:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).df()


def scalar(warehouse: Path, sql: str, params=None):
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return con.execute(sql, params or []).fetchone()[0]


def load_fake_ml(warehouse: Path) -> None:
    """Fake write-back tables: stores 1-2, 2013-03-25 .. 2013-04-07 (history and horizon days); the validation
    fold's rows 2013-03-11 .. 2013-03-24 in ml.backtest_forecast; every other ml table of the contract empty."""
    with duckdb.connect(str(warehouse)) as con:
        ensure_ml_tables(con)
        con.execute(
            """
            CREATE SCHEMA IF NOT EXISTS ml;
            CREATE OR REPLACE TABLE ml.store_sales_forecast AS
            SELECT s.store_id::INTEGER AS store_id, d.forecast_date::DATE AS forecast_date,
                   v.model, v.model_version, DATE '2013-03-25' AS origin_date,
                   (500.0 + s.store_id * 10 + v.offset_)::DOUBLE AS sales_pred,
                   (400.0 + s.store_id * 10)::DOUBLE AS sales_lower,
                   (600.0 + s.store_id * 10 + v.offset_)::DOUBLE AS sales_upper,
                   CASE WHEN v.model = 'random_forest' THEN NULL ELSE 50.0 END::DOUBLE AS customers_pred,
                   TIMESTAMP '2024-01-01 00:00:00' AS created_at
            FROM (VALUES (1), (2)) s(store_id)
            CROSS JOIN (SELECT unnest(generate_series(TIMESTAMP '2013-03-25', TIMESTAMP '2013-04-07',
                                                      INTERVAL 1 DAY)) AS forecast_date) d
            CROSS JOIN (VALUES ('baseline', 'baseline-v1', 0), ('baseline', 'baseline-v2', 1),
                               ('random_forest', 'random_forest-v1', 2)) v(model, model_version, offset_);
            CREATE OR REPLACE TABLE ml.model_registry AS
            SELECT * FROM (VALUES
                ('baseline', 'baseline-v1', TIMESTAMP '2024-01-01 10:00:00'),
                ('baseline', 'baseline-v2', TIMESTAMP '2024-02-01 10:00:00'),
                ('random_forest', 'random_forest-v1', TIMESTAMP '2024-01-15 10:00:00')
            ) r(model, model_version, trained_at),
            (SELECT DATE '2013-01-01' AS train_start, DATE '2013-03-10' AS train_end,
                    100::BIGINT AS n_train_rows, '{}'::JSON AS params, 'models/x' AS artifact_path);
            CREATE OR REPLACE TABLE ml.model_metrics AS
            SELECT model, model_version, 'validation' AS split, 'rmspe' AS metric, 0.12::DOUBLE AS value,  -- DOUBLE like the write-back's
                   TIMESTAMP '2024-02-01 11:00:00' AS created_at
            FROM ml.model_registry;
            INSERT INTO ml.backtest_forecast BY NAME
            SELECT r.model, r.model_version, 'validation' AS split, s.store_id::INTEGER AS store_id,
                   d.sale_date::DATE AS forecast_date,
                   (d.sale_date::DATE - DATE '2013-03-11')::INTEGER + 1 AS horizon_day,
                   true AS is_open, 500.0 AS actual_sales, 50.0 AS actual_customers, 520.0 AS sales_pred,
                   450.0 AS sales_lower,
                   590.0 AS sales_upper, 52.0 AS customers_pred, TIMESTAMP '2024-02-01 11:00:00' AS created_at
            FROM ml.model_registry r
            CROSS JOIN (VALUES (1), (2)) s(store_id)
            CROSS JOIN (SELECT unnest(generate_series(TIMESTAMP '2013-03-11', TIMESTAMP '2013-03-24',
                                                      INTERVAL 1 DAY)) AS sale_date) d;
            """
        )


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """Tiny raw data with an EMPTY raw.plan, built with --exclude tag:forecast, then the
    forecast marts built on fake ml.* tables with --select tag:forecast."""
    workdir = tmp_path_factory.mktemp("dbt_base")
    warehouse = workdir / "warehouse.duckdb"
    history = make_history()
    load_raw(warehouse, history, make_stores())
    assert_ok(run_dbt(workdir, warehouse, "build", "--exclude", "tag:forecast"))
    load_fake_ml(warehouse)
    forecast = run_dbt(workdir, warehouse, "build", "--select", "tag:forecast")
    return {"warehouse": warehouse, "workdir": workdir, "history": history, "forecast": forecast}


@pytest.fixture(scope="module")
def with_plan(tmp_path_factory):
    """The same history with a supplied plan in raw.plan."""
    workdir = tmp_path_factory.mktemp("dbt_plan")
    warehouse = workdir / "warehouse.duckdb"
    history, plan = make_history(), make_plan()
    load_raw(warehouse, history, make_stores(), plan)
    assert_ok(run_dbt(workdir, warehouse, "build", "--exclude", "tag:forecast"))
    return {"warehouse": warehouse, "history": history, "plan": plan}


def feature_row(warehouse: Path, store_id: int, day: str) -> dict:
    df = query(
        warehouse,
        "select * from marts.fct_store_daily_features where store_id = ? and sale_date = ?",
        [store_id, day],
    )
    assert len(df) == 1, f"expected one row for store {store_id} on {day}, got {len(df)}"
    return df.iloc[0].to_dict()


# --------------------------------------------------------------------------- staging


def test_schemas_are_exactly_staging_intermediate_marts(base):
    df = query(base["warehouse"], "select distinct table_schema from information_schema.tables")
    assert {"staging", "intermediate", "marts"} <= set(df["table_schema"])
    assert not [s for s in df["table_schema"] if s.startswith("main_")]


def test_staging_renames_and_casts(base):
    wh = base["warehouse"]
    types = query(
        wh,
        "select table_name, column_name, data_type from information_schema.columns "
        "where table_schema = 'staging'",
    )
    t = {(r.table_name, r.column_name): r.data_type for r in types.itertuples()}
    assert t[("stg_rossmann__sales", "store_id")] == "INTEGER"
    assert t[("stg_rossmann__sales", "sale_date")] == "DATE"
    assert t[("stg_rossmann__sales", "is_open")] == "BOOLEAN"
    assert t[("stg_rossmann__sales", "is_promo")] == "BOOLEAN"
    assert t[("stg_rossmann__sales", "is_school_holiday")] == "BOOLEAN"
    assert t[("stg_rossmann__sales", "state_holiday")] == "VARCHAR"
    assert t[("stg_rossmann__stores", "is_in_promo2")] == "BOOLEAN"
    assert t[("stg_rossmann__stores", "competition_distance_m")] == "DOUBLE"
    assert t[("stg_rossmann__plan", "is_open")] == "BOOLEAN"
    assert t[("stg_rossmann__plan", "plan_id")] == "INTEGER"
    # no Kaggle names left
    assert not [c for (_, c) in t if c != c.lower()]

    row = query(
        wh,
        "select * from staging.stg_rossmann__sales where store_id = 1 and sale_date = '2013-01-01'",
    ).iloc[0]
    assert row["is_open"] == False  # noqa: E712 - numpy bool
    assert row["state_holiday"] == "a"
    assert scalar(wh, "select count(*) from staging.stg_rossmann__sales") == len(base["history"])

    stores = query(wh, "select * from staging.stg_rossmann__stores order by store_id")
    assert stores["promo_interval"].isna().tolist() == [True, False, False, False]  # 'NULL' -> NULL
    assert pd.isna(stores.loc[1, "competition_distance_m"])
    assert stores["is_in_promo2"].tolist() == [False, True, True, True]


def test_plan_open_null_kept_in_staging_and_open_in_marts(with_plan):
    wh = with_plan["warehouse"]
    stg = scalar(wh, "select is_open from staging.stg_rossmann__plan "
                     "where store_id = 1 and sale_date = '2013-04-02'")
    assert stg is None
    assert feature_row(wh, 1, "2013-04-02")["is_open"] == True  # noqa: E712


# --------------------------------------------------------------------------- fct row counts / plan


def test_fct_rows_are_history_plus_assumed_calendar_when_plan_empty(base):
    wh = base["warehouse"]
    n_history = len(base["history"])
    n_stores = base["history"]["Store"].nunique()
    counts = query(
        wh,
        "select row_source, is_history, count(*) as n, min(sale_date) as first, "
        "max(sale_date) as last, count(distinct store_id) as stores "
        "from marts.fct_store_daily_features group by all",
    ).set_index("row_source")
    assert set(counts.index) == {"history", "assumed_calendar"}
    assert counts.loc["history", "n"] == n_history
    assert counts.loc["assumed_calendar", "n"] == HORIZON_DAYS * n_stores
    assert counts.loc["assumed_calendar", "stores"] == n_stores
    assert pd.Timestamp(counts.loc["assumed_calendar", "first"]) == HISTORY_END + pd.Timedelta(days=1)
    assert pd.Timestamp(counts.loc["assumed_calendar", "last"]) == HISTORY_END + pd.Timedelta(days=42)
    assert scalar(wh, "select count(*) from marts.fct_store_daily_features") == (
        n_history + HORIZON_DAYS * n_stores
    )
    # plan rows carry no actuals
    assert scalar(wh, "select count(*) from marts.fct_store_daily_features "
                      "where not is_history and (sales is not null or customers is not null)") == 0


def test_no_rows_fabricated_for_history_gaps(base):
    n = scalar(
        base["warehouse"],
        "select count(*) from marts.fct_store_daily_features where store_id = 3 "
        "and sale_date between ? and ?",
        [STORE3_GAP[0].date(), STORE3_GAP[1].date()],
    )
    assert n == 0
    dim = query(base["warehouse"], "select * from marts.dim_stores where store_id = 3").iloc[0]
    assert dim["n_missing_days"] == 11


def test_assumed_calendar_rules(base):
    wh = base["warehouse"]
    plan = query(
        wh,
        "select store_id, sale_date, is_open, is_promo, state_holiday, is_school_holiday, "
        "day_of_week, week_of_year from marts.fct_store_daily_features where not is_history",
    )
    # no state or school holidays
    assert (plan["state_holiday"] == "0").all()
    assert (~plan["is_school_holiday"]).all()
    # stores 1-3 were open Mon..Sat in the majority of their last 8 weeks, closed on Sundays
    s123 = plan[plan["store_id"] != 4]
    assert (s123["is_open"] == (s123["day_of_week"] != 7)).all()
    # store 4 was closed throughout
    assert (~plan.loc[plan["store_id"] == 4, "is_open"]).all()
    # promo repeats the last 14 days: Mon..Fri of even ISO weeks (stores 1-3), never for store 4
    expected_promo = (s123["week_of_year"] % 2 == 0) & (s123["day_of_week"] <= 5)
    assert (s123["is_promo"] == expected_promo).all()
    assert (~plan.loc[plan["store_id"] == 4, "is_promo"]).all()


def test_supplied_plan_replaces_assumed_calendar(with_plan):
    wh = with_plan["warehouse"]
    plan = with_plan["plan"]
    counts = query(
        wh, "select row_source, count(*) as n from marts.fct_store_daily_features group by 1"
    ).set_index("row_source")["n"]
    assert set(counts.index) == {"history", "plan", "assumed_calendar"}
    assert counts["plan"] == len(plan)
    assert counts["history"] == len(with_plan["history"])
    # the 14-day plan of stores 1 and 2 ends early: the rest of the horizon is assumed, for its stores only
    assumed = query(wh, "select store_id, count(*) as n, min(sale_date) as first, max(sale_date) as last "
                        "from intermediate.int_plan_store_days where plan_source = 'assumed_calendar' "
                        "group by 1 order by 1")
    assert assumed["store_id"].tolist() == [1, 2]
    assert (assumed["n"] == HORIZON_DAYS - 14).all()
    assert (pd.to_datetime(assumed["first"]) == pd.Timestamp("2013-04-15")).all()
    assert (pd.to_datetime(assumed["last"]) == HISTORY_END + pd.Timedelta(days=HORIZON_DAYS)).all()
    easter_monday = feature_row(wh, 1, "2013-04-01")
    assert easter_monday["state_holiday"] == "a" and easter_monday["is_state_holiday"]
    assert not easter_monday["is_open"]
    # distances look ahead into the plan: Saturday 2013-03-30 is two days before Easter Monday
    assert feature_row(wh, 1, "2013-03-30")["days_until_state_holiday"] == 2


# --------------------------------------------------------------------------- feature examples


def test_holiday_and_closure_distances(base):
    wh = base["warehouse"]
    r = feature_row(wh, 1, "2013-03-27")  # Wednesday before Good Friday
    assert r["days_until_state_holiday"] == 2
    assert r["days_since_state_holiday"] == 14  # New Year is far away: capped
    assert r["days_since_closed"] == 3  # Sunday 24th
    assert r["days_until_closed"] == 2  # Good Friday 29th
    r = feature_row(wh, 1, "2013-03-29")  # Good Friday: a closed state holiday
    assert (r["days_since_state_holiday"], r["days_until_state_holiday"]) == (0, 0)
    assert (r["days_since_closed"], r["days_until_closed"]) == (0, 0)
    assert r["is_state_holiday"] and r["state_holiday"] == "b"
    r = feature_row(wh, 1, "2013-01-03")  # Thursday after New Year
    assert r["days_since_state_holiday"] == 2
    assert r["days_since_closed"] == 2
    assert r["days_until_closed"] == 3  # Sunday 6th
    # the missing days of store 3's gap are not closed days: last closed row is Sunday 3 Feb
    r = feature_row(wh, 3, "2013-02-21")
    assert r["days_since_closed"] == 14
    assert r["days_until_closed"] == 3  # Sunday 24th
    # last history day (a Sunday) sees the assumed calendar's next Sunday
    r = feature_row(wh, 1, "2013-04-01")
    assert (r["is_history"], r["days_since_closed"], r["days_until_closed"]) == (False, 1, 6)


def test_competition_flags(base):
    wh = base["warehouse"]
    r = feature_row(wh, 1, "2013-01-31")
    assert (r["is_competition_open"], pd.isna(r["months_since_competition_open"])) == (False, True)
    r = feature_row(wh, 1, "2013-02-01")
    assert (r["is_competition_open"], r["months_since_competition_open"]) == (True, 0)
    r = feature_row(wh, 1, "2013-03-15")
    assert (r["is_competition_open"], r["months_since_competition_open"]) == (True, 1)
    r = feature_row(wh, 2, "2013-03-15")  # blank distance: no known competitor
    assert r["is_competition_open"] == False and pd.isna(r["competition_distance_m"])  # noqa: E712
    assert pd.isna(r["months_since_competition_open"])
    r = feature_row(wh, 3, "2013-01-02")  # distance known, opening unknown: open, months unknown
    assert r["is_competition_open"] == True and pd.isna(r["months_since_competition_open"])  # noqa: E712
    r = feature_row(wh, 4, "2013-03-01")  # competitor since Sept 2008
    assert r["months_since_competition_open"] == (2013 - 2008) * 12 + (3 - 9)


def test_promo2_flags(base):
    wh = base["warehouse"]
    # store 2: Promo2 since ISO week 5/2013 (Monday 2013-01-28), months Feb,May,Aug,Nov
    r = feature_row(wh, 2, "2013-01-27")
    assert (r["is_promo2_active"], r["is_promo2_month"]) == (False, False)
    r = feature_row(wh, 2, "2013-01-28")
    assert (r["is_promo2_active"], r["is_promo2_month"]) == (True, False)
    r = feature_row(wh, 2, "2013-02-05")
    assert (r["is_promo2_active"], r["is_promo2_month"]) == (True, True)
    r = feature_row(wh, 2, "2013-03-05")
    assert (r["is_promo2_active"], r["is_promo2_month"]) == (True, False)
    # store 3: since week 10/2013 (Monday 2013-03-04), months Mar,Jun,Sept,Dec
    assert feature_row(wh, 3, "2013-03-02")["is_promo2_active"] == False  # noqa: E712
    r = feature_row(wh, 3, "2013-03-04")
    assert (r["is_promo2_active"], r["is_promo2_month"]) == (True, True)
    # store 4: since week 1/2013, months Jan,Apr,Jul,Oct: not in March, yes in April (plan)
    assert feature_row(wh, 4, "2013-03-04")["is_promo2_month"] == False  # noqa: E712
    r = feature_row(wh, 4, "2013-04-10")
    assert (r["is_history"], r["is_promo2_active"], r["is_promo2_month"]) == (False, True, True)
    # store 1 is not in Promo2
    assert query(wh, "select bool_or(is_promo2_active) as a from marts.fct_store_daily_features "
                     "where store_id = 1").iloc[0]["a"] == False  # noqa: E712


def test_fct_store_daily_features_columns_match_contract(base):
    contract = [
        ("store_id", "INTEGER"), ("sale_date", "DATE"), ("is_history", "BOOLEAN"),
        ("sales", "DOUBLE"), ("customers", "DOUBLE"), ("is_open", "BOOLEAN"),
        ("is_promo", "BOOLEAN"), ("state_holiday", "VARCHAR"), ("is_state_holiday", "BOOLEAN"),
        ("is_school_holiday", "BOOLEAN"), ("day_of_week", "INTEGER"), ("day_of_month", "INTEGER"),
        ("month", "INTEGER"), ("year", "INTEGER"), ("week_of_year", "INTEGER"),
        ("day_of_year", "INTEGER"), ("store_type", "VARCHAR"), ("assortment", "VARCHAR"),
        ("competition_distance_m", "DOUBLE"), ("is_competition_open", "BOOLEAN"),
        ("months_since_competition_open", "INTEGER"), ("is_promo2_active", "BOOLEAN"),
        ("is_promo2_month", "BOOLEAN"), ("days_since_state_holiday", "INTEGER"),
        ("days_until_state_holiday", "INTEGER"), ("days_since_closed", "INTEGER"),
        ("days_until_closed", "INTEGER"),
    ]
    cols = query(
        base["warehouse"],
        "select column_name, data_type from information_schema.columns "
        "where table_schema = 'marts' and table_name = 'fct_store_daily_features' "
        "order by ordinal_position",
    )
    actual = list(cols.itertuples(index=False, name=None))
    assert actual[: len(contract)] == contract


# --------------------------------------------------------------------------- aggregates


def test_monthly_and_weekly_aggregates_add_up(base):
    wh = base["warehouse"]
    for table, key, trunc in [("agg_store_monthly", "month_start", "month"),
                              ("agg_store_weekly", "week_start", "week")]:
        diff = query(
            wh,
            f"""
            with daily as (
                select store_id, cast(date_trunc('{trunc}', sale_date) as date) as {key},
                       sum(sales) as sales, sum(customers) as customers,
                       count(*) filter (where is_open) as open_days,
                       count(*) filter (where is_promo) as promo_days
                from marts.fct_store_daily_features where is_history group by all
            )
            select * from daily full outer join marts.{table} agg using (store_id, {key})
            where daily.sales is distinct from agg.sales
               or daily.customers is distinct from agg.customers
               or daily.open_days is distinct from agg.open_days
               or daily.promo_days is distinct from agg.promo_days
            """,
        )
        assert diff.empty, f"{table} does not add up:\n{diff}"
    total = scalar(wh, "select sum(sales) from marts.agg_store_monthly")
    assert total == base["history"]["Sales"].sum()
    march = query(wh, "select * from marts.agg_store_monthly "
                      "where store_id = 1 and month_start = '2013-03-01'").iloc[0]
    assert march["sales_per_customer"] == pytest.approx(march["sales"] / march["customers"])
    assert march["avg_sales_per_open_day"] == pytest.approx(march["sales"] / march["open_days"])


def test_sales_per_customer_without_division_by_zero(base):
    wh = base["warehouse"]
    # store 4 was closed all of March: no customers -> NULL ratios, not an error or inf
    m = query(wh, "select * from marts.agg_store_monthly where store_id = 4").iloc[0]
    assert m["customers"] == 0 and pd.isna(m["sales_per_customer"])
    assert m["open_days"] == 0 and pd.isna(m["avg_sales_per_open_day"])
    w = query(wh, "select * from marts.agg_store_weekly where store_id = 4")
    assert w["sales_per_customer"].isna().all()
    assert scalar(wh, "select count(*) from marts.agg_store_weekly "
                      "where isinf(sales_per_customer) or isnan(sales_per_customer)") == 0


def test_dim_stores(base):
    dim = query(base["warehouse"], "select * from marts.dim_stores order by store_id")
    assert dim["store_id"].tolist() == [1, 2, 3, 4]
    assert dim["n_history_days"].tolist() == [90, 90, 79, 31]
    assert str(dim.loc[3, "first_history_date"])[:10] == "2013-03-01"
    assert pd.isna(dim.loc[3, "avg_sales_per_open_day"])
    hist = base["history"]
    s1 = hist[(hist["Store"] == 1) & (hist["Open"] == 1)]
    assert dim.loc[0, "avg_sales_per_open_day"] == pytest.approx(s1["Sales"].mean())
    assert str(dim.loc[1, "promo2_start_date"])[:10] == "2013-01-28"


# --------------------------------------------------------------------------- forecast marts


def test_forecast_marts(base):
    assert_ok(base["forecast"])
    wh = base["warehouse"]
    fc = query(wh, "select * from marts.fct_sales_forecast")
    assert len(fc) == 2 * 14 * 3
    latest = fc.groupby("model_version")["is_latest_version"].first().to_dict()
    assert latest == {"baseline-v1": False, "baseline-v2": True, "random_forest-v1": True}
    hist = fc[fc["forecast_date"] <= HISTORY_END]
    assert hist["has_actuals"].all() and hist["actual_sales"].notna().all()
    assert fc.loc[fc["forecast_date"] > HISTORY_END, "actual_sales"].isna().all()
    assert (hist["sales_error"] - (hist["sales_pred"] - hist["actual_sales"])).abs().max() < 1e-9
    r = fc[(fc["store_id"] == 1) & (fc["forecast_date"] == "2013-03-27")
           & (fc["model_version"] == "baseline-v1")].iloc[0]
    assert r["actual_sales"] == 1000 + 270 and r["sales_error"] == 510 - 1270
    # plan calendar on horizon days (assumed calendar here: Sunday closed)
    r = fc[(fc["store_id"] == 2) & (fc["forecast_date"] == "2013-04-07")].iloc[0]
    assert r["is_open"] == False and r["store_type"] == "a"  # noqa: E712

    every = query(wh, "select * from marts.fct_sales_forecast_monthly")
    monthly = every[every["is_served"]].reset_index(drop=True)
    assert len(monthly) == 2 * 2 * 3  # stores x months x versions
    # the backtest folds (validation, 2013-03-11..24: forecast 520 against 500 a day) beside them
    folds = every[every["forecast_source"] == "backtest"]
    assert len(folds) == 2 * 3 and (folds["split"] == "validation").all() and not folds["is_served"].any()
    assert (folds["n_days_with_actuals"] == 14).all()
    assert np.allclose(folds["sales_accuracy_pct"], 100 * (1 - 20 / 500))
    assert len(every) == len(monthly) + len(folds)  # one origin per version
    daily_sum = fc.groupby(["store_id", "model_version"])["sales_pred"].sum()
    monthly_sum = monthly.groupby(["store_id", "model_version"])["sales_pred"].sum()
    pd.testing.assert_series_equal(daily_sum, monthly_sum, check_names=False)
    march = monthly[monthly["month_start"] == "2013-03-01"]
    april = monthly[monthly["month_start"] == "2013-04-01"]
    assert (march["n_days"] == 7).all() and (march["n_days_with_actuals"] == 7).all()
    assert (april["n_days_with_actuals"] == 0).all() and april["actual_sales"].isna().all()
    assert monthly.loc[monthly["model"] == "random_forest", "customers_pred"].isna().all()


# --------------------------------------------------------------------------- docs and tests


def test_every_model_and_column_documented(base):
    manifest = json.loads((base["workdir"] / "target" / "manifest.json").read_text())
    models = [n for n in manifest["nodes"].values() if n["resource_type"] == "model"]
    assert len(models) >= 12
    wh = base["warehouse"]
    cols = query(wh, "select table_schema, table_name, column_name from information_schema.columns")
    for node in models:
        assert node["description"].strip(), f"{node['name']} has no description"
        actual = set(cols.loc[(cols["table_schema"] == node["schema"])
                              & (cols["table_name"] == node["alias"]), "column_name"])
        assert actual, f"{node['name']} not built"
        documented = {c for c, v in node["columns"].items() if v["description"].strip()}
        assert actual == documented, f"{node['name']}: undocumented {actual - documented}, " \
                                     f"stale {documented - actual}"


# ------------------------------------------------- the feature mart's rules (dbt tests, not a GX suite)

FCT = "marts.fct_store_daily_features"


def fct_test_statuses(base, workdir: Path, spoil_sql: str) -> dict[str, str]:
    """Status of each dbt test of the feature mart (by test name) on a copy of the base warehouse whose mart rows
    ``spoil_sql`` breaks; `dbt test` reads the table as it is, without rebuilding it."""
    warehouse = workdir / "warehouse.duckdb"
    shutil.copy(base["warehouse"], warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(spoil_sql)
    run_dbt(workdir, warehouse, "test", "--select", "fct_store_daily_features")
    return {unique_id.split(".")[2]: status for unique_id, status in run_results(workdir).items()}


def assert_only(statuses: dict[str, str], expected: dict[str, str]) -> None:
    """Exactly the tests named (by name prefix) in ``expected`` end with the status given; every other one passes."""
    matched = {prefix: [n for n in statuses if n.startswith(prefix)] for prefix in expected}
    assert all(len(names) == 1 for names in matched.values()), matched
    got = {prefix: statuses[names[0]] for prefix, names in matched.items()}
    assert got == expected
    others = {n: st for n, st in statuses.items() if not any(n in names for names in matched.values())}
    assert others and set(others.values()) == {"pass"}, {n: st for n, st in others.items() if st != "pass"}


def test_fct_rules_fail_on_bad_rows(base, tmp_path):
    statuses = fct_test_statuses(base, tmp_path, f"""
        -- leakage: a plan row that carries sales
        UPDATE {FCT} SET sales = 1 WHERE NOT is_history AND store_id = 1 AND sale_date = DATE '2013-04-02';
        -- a plan row dated inside the history (store 3's gap, so the key stays unique)
        UPDATE {FCT} SET sale_date = DATE '2013-02-15', day_of_week = 5
        WHERE NOT is_history AND store_id = 3 AND sale_date = DATE '2013-04-03';
        UPDATE {FCT} SET day_of_week = day_of_week % 7 + 1 WHERE store_id = 2 AND sale_date = DATE '2013-03-05';
        UPDATE {FCT} SET year = 1999 WHERE store_id = 4 AND sale_date = DATE '2013-03-10';
        -- a Promo2 month of a store without Promo2 (also off its Promo2 cycle)
        UPDATE {FCT} SET is_promo2_month = true WHERE store_id = 1 AND sale_date = DATE '2013-03-12';
        UPDATE {FCT} SET days_since_closed = 15 WHERE store_id = 2 AND sale_date = DATE '2013-03-13';
        UPDATE {FCT} SET customers = -1 WHERE store_id = 2 AND sale_date = DATE '2013-03-14';
    """)
    assert_only(statuses, {
        "fct_store_daily_features_actuals_only_on_history": "fail",
        "fct_store_daily_features_plan_after_history": "fail",
        "fct_store_daily_features_day_of_week_matches_date": "fail",
        "fct_store_daily_features_year_plausible": "warn",
        "fct_store_daily_features_promo2_month_needs_active": "fail",
        "fct_store_daily_features_promo2_cycle": "fail",
        "accepted_range_fct_store_daily_features_days_since_closed": "fail",
        "accepted_range_fct_store_daily_features_customers": "fail",
    })


def test_fct_needs_history_and_plan_rows(base, tmp_path):
    statuses = fct_test_statuses(base, tmp_path, f"DELETE FROM {FCT} WHERE NOT is_history")
    assert_only(statuses, {"fct_store_daily_features_history_and_plan_rows": "fail"})


# --------------------------------------------------------------------------- real data


@pytest.mark.skipif(not os.environ.get("ROSSMANN_DIR"), reason="set ROSSMANN_DIR to the real Kaggle files")
def test_real_data_builds(tmp_path):
    data_dir = Path(os.environ["ROSSMANN_DIR"])
    warehouse = tmp_path / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        load_incoming(con, data_dir)  # the platform's loader: types from ingestion.raw_layout
        promote_incoming(con)
        con.execute("DELETE FROM raw.plan")  # the checks below are on the assumed calendar
        n_history = con.execute("select count(*) from raw.sales").fetchone()[0]
        n_stores = con.execute("select count(distinct Store) from raw.sales").fetchone()[0]
    assert_ok(run_dbt(tmp_path, warehouse, "build", "--exclude", "tag:forecast"))
    assert scalar(warehouse, "select count(*) from staging.stg_rossmann__sales") == n_history
    assert scalar(warehouse, "select count(*) from marts.dim_stores") == 1115
    assert scalar(warehouse, "select count(*) from marts.fct_store_daily_features") == (
        n_history + HORIZON_DAYS * n_stores
    )
    assert scalar(warehouse, "select count(*) from marts.fct_store_daily_features "
                             "where row_source = 'assumed_calendar'") == HORIZON_DAYS * n_stores
