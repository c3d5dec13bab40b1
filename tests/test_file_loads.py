"""New sales data arriving as files (ingestion/load.py): `train_*.csv[.gz]` beside `train.csv` merged on (Store, Date)
in name order, only new files read, every file logged in meta.file_loads, plan days that became history dropped;
bad delta files stop the run naming file, column and samples, and change nothing.

The end-to-end test runs the real raw asset and dbt on a copy of the session pipeline's warehouse; the bad-file
tests run the loader and the Great Expectations validation (what stops a run) on a small warehouse of their own,
and one of them the raw asset."""

from __future__ import annotations

import gzip
import shutil
from pathlib import Path

import duckdb
import pandas as pd
import pytest
from dagster import AssetKey

from expectations import validate_incoming
from expectations.report import failure_lines
from ingestion.load import (
    RawInputError,
    discard_incoming,
    incoming_row_files,
    load_incoming,
    promote_incoming,
)
from ingestion.synthetic import generate_dataset
from orchestration.definitions import materialize_pipeline

RAW_KEYS = [AssetKey(["raw", t]) for t in ("sales", "stores", "plan")]
HEADER = "Store,DayOfWeek,Date,Sales,Customers,Open,Promo,StateHoliday,SchoolHoliday"


def rows(con, sql: str, params=None) -> list[tuple]:
    return con.execute(sql, params or []).fetchall()


def snapshot(warehouse: Path) -> dict:
    """Row count and content hash of every raw table and of meta.file_loads."""
    with duckdb.connect(str(warehouse), read_only=True) as con:
        return {t: rows(con, f"SELECT count(*), hash(list(x ORDER BY x::VARCHAR)) FROM {t} x")[0]
                for t in ("raw.sales", "raw.stores", "raw.plan", "meta.file_loads")}


def sales_metadata(result, table: str = "sales") -> dict:
    [materialization] = [m for m in result.asset_materializations_for_node("raw_tables")
                         if m.asset_key == AssetKey(["raw", table])]
    return {k: v.value for k, v in materialization.metadata.items()}


def failure_message(result) -> str:
    [event] = [e for e in result.all_events if e.is_step_failure]
    return event.step_failure_data.error.message


# ------------------------------------------------------------------- new and corrected days, end to end


def test_new_days_and_a_corrected_day_reach_raw_staging_and_the_feature_mart(pipeline_warehouse, tmp_path):
    from forecasting.folds import ForecastSpec
    from warehouse.dbt import run_dbt

    raw_dir = shutil.copytree(pipeline_warehouse.raw_dir, tmp_path / "raw")
    data_dir = tmp_path / "data"
    warehouse = pipeline_warehouse.copy_build(data_dir / "warehouse.duckdb")
    train = pd.read_csv(raw_dir / "train.csv", dtype={"StateHoliday": str})
    # The first plan day (Saturday 2015-08-01) as history: each store's previous Saturday with the new date.
    new_day = train[train["Date"] == "2015-07-25"].assign(Date="2015-08-01")
    n_stores = pipeline_warehouse.n_stores
    assert len(new_day) == n_stores
    corrected = train[(train["Date"] == "2015-07-31") & (train["Open"] == 1)].head(1).copy()
    store, old_sales = int(corrected["Store"].iloc[0]), int(corrected["Sales"].iloc[0])
    corrected["Sales"] = old_sales + 321
    delta = pd.concat([new_day, corrected])
    delta.to_csv(raw_dir / "train_20150801.csv", index=False)

    result = materialize_pipeline(data_dir, raw_dir, selection=RAW_KEYS)
    assert result.success
    sales, plan = sales_metadata(result), sales_metadata(result, "plan")
    assert [f["file_name"] for f in sales["files_loaded"]] == ["train_20150801.csv"]
    assert sales["files_skipped"] == ["train.csv"] and sales["rebuilt"].startswith("no")
    assert (sales["rows_new"], sales["rows_corrected"], sales["rows_removed"]) == (n_stores, 1, 0)
    assert plan["plan_days_dropped"] == n_stores and plan["files_skipped"] == ["test.csv"]

    with duckdb.connect(str(warehouse), read_only=True) as con:
        logged = rows(con, "SELECT file_name, n_rows, first_date::VARCHAR, last_date::VARCHAR, rows_new, "
                           "rows_corrected, rows_unchanged, run_id FROM meta.file_loads ORDER BY loaded_at DESC")
        assert logged[0] == ("train_20150801.csv", n_stores + 1, "2015-07-31", "2015-08-01", n_stores, 1, 0,
                             result.run_id)
        assert {r[0] for r in logged[1:]} == {"train.csv", "store.csv", "test.csv"}  # the fixture's first run
        assert rows(con, "SELECT Sales FROM raw.sales WHERE Store = ? AND Date = '2015-07-31'", [store]) == [
            (old_sales + 321,)]
        assert rows(con, "SELECT count(*), max(Date)::VARCHAR FROM raw.sales WHERE Date > '2015-07-31'") == [
            (n_stores, "2015-08-01")]
        assert rows(con, "SELECT count(*), min(Date)::VARCHAR FROM raw.plan") == [
            ((pipeline_warehouse.horizon_days - 1) * n_stores, "2015-08-02")]

    run_dbt(warehouse, ["run", "--select", "+fct_store_daily_features"],
            ForecastSpec(horizon_days=pipeline_warehouse.horizon_days).dbt_vars())
    with duckdb.connect(str(warehouse), read_only=True) as con:
        assert rows(con, "SELECT sales FROM staging.stg_rossmann__sales WHERE store_id = ? "
                         "AND sale_date = '2015-07-31'", [store]) == [(old_sales + 321,)]
        assert rows(con, "SELECT sales FROM marts.fct_store_daily_features WHERE store_id = ? "
                         "AND sale_date = '2015-07-31'", [store]) == [(old_sales + 321,)]
        mart = dict(((r, h), (n, first, last)) for r, h, n, first, last in rows(con, """
            SELECT row_source, is_history, count(*), min(sale_date)::VARCHAR, max(sale_date)::VARCHAR
            FROM marts.fct_store_daily_features WHERE sale_date >= '2015-08-01' GROUP BY ALL"""))
    # The origin moved to 2015-08-02: the plan's 41 remaining days, the 42nd from the assumed calendar.
    assert mart == {("history", True): (n_stores, "2015-08-01", "2015-08-01"),
                    ("plan", False): (41 * n_stores, "2015-08-02", "2015-09-11"),
                    ("assumed_calendar", False): (n_stores, "2015-09-12", "2015-09-12")}

    # The same files again: nothing is read or logged twice.
    before = snapshot(warehouse)
    again = materialize_pipeline(data_dir, raw_dir, selection=RAW_KEYS)
    assert again.success
    sales = sales_metadata(again)
    assert sales["files_loaded"] == [] and sales["files_skipped"] == ["train.csv", "train_20150801.csv"]
    assert (sales["rows_new"], sales["rows_corrected"]) == (0, 0)
    assert snapshot(warehouse) == before


# ------------------------------------------------------------------- the loader on a small warehouse


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> tuple[Path, Path]:
    """Two stores, 2015-05-01 .. 2015-07-31 and a 42-day plan, loaded once: (raw folder, warehouse)."""
    root = tmp_path_factory.mktemp("file_loads")
    raw_dir, warehouse = root / "raw", root / "data" / "warehouse.duckdb"
    generate_dataset(raw_dir, n_stores=2, start="2015-05-01", end="2015-07-31", horizon_days=42)
    warehouse.parent.mkdir()
    with duckdb.connect(str(warehouse)) as con:
        load_incoming(con, raw_dir)
        promote_incoming(con, run_id="first")
    return raw_dir, warehouse


def private(small, tmp_path) -> tuple[Path, Path]:
    raw_dir, warehouse = small
    copy = tmp_path / "data" / "warehouse.duckdb"
    copy.parent.mkdir(parents=True)
    shutil.copyfile(warehouse, copy)
    return shutil.copytree(raw_dir, tmp_path / "raw"), copy


def write_delta(raw_dir: Path, name: str, lines: list[str], *, header: str = HEADER) -> None:
    text = "\n".join([header, *lines]) + "\n"
    if name.endswith(".gz"):
        with gzip.open(raw_dir / name, "wt") as fh:
            fh.write(text)
    else:
        (raw_dir / name).write_text(text)


def load(warehouse: Path, raw_dir: Path, run_id: str) -> dict:
    with duckdb.connect(str(warehouse)) as con:
        loads = {l.table: l for l in load_incoming(con, raw_dir)}
        promote_incoming(con, run_id=run_id)
    return loads


def test_name_order_decides_and_changed_or_early_files_rebuild(small, tmp_path):
    raw_dir, warehouse = private(small, tmp_path)
    n_base = len(pd.read_csv(raw_dir / "train.csv"))
    write_delta(raw_dir, "train_2.csv.gz", ["1,6,2015-08-01,5000,500,1,0,0,0", "2,6,2015-08-01,6000,600,1,0,0,0",
                                            "2,6,2015-08-01,6000,600,1,0,0,0"])  # an exact repeat counts once
    sales = load(warehouse, raw_dir, "second")["sales"]
    assert sales.rebuild_reason is None and sales.files_skipped == ("train.csv",)
    [f] = sales.files_loaded
    assert (f.file_name, f.n_rows, f.rows_new, f.rows_corrected, f.rows_unchanged) == ("train_2.csv.gz", 3, 2, 0, 0)

    # train_1 sorts before the loaded train_2: everything is merged again in name order, train_2 still wins.
    write_delta(raw_dir, "train_1.csv", ["1,6,2015-08-01,7000,700,1,0,0,0", "1,5,2015-07-31,4000,400,1,0,0,0"])
    sales = load(warehouse, raw_dir, "third")["sales"]
    assert "train_1.csv sorts before train_2.csv.gz" in sales.rebuild_reason
    assert [(f.file_name, f.rows_new, f.rows_corrected, f.rows_unchanged) for f in sales.files_loaded] == [
        ("train.csv", n_base, 0, 0), ("train_1.csv", 1, 1, 0), ("train_2.csv.gz", 1, 1, 0)]
    assert (sales.rows_new, sales.rows_corrected, sales.rows_removed) == (0, 1, 0)  # against the previous raw.sales
    with duckdb.connect(str(warehouse)) as con:
        assert rows(con, "SELECT Date::VARCHAR, Sales FROM raw.sales WHERE Store = 1 AND Date >= '2015-07-31' "
                         "ORDER BY Date") == [("2015-07-31", 4000), ("2015-08-01", 5000)]
        assert rows(con, "SELECT run_id, count(*) FROM meta.file_loads GROUP BY ALL ORDER BY ALL") == [
            ("first", 3), ("second", 1), ("third", 3)]

    # A loaded file that changes (or goes) is merged again from scratch too; the old values leave with it.
    (raw_dir / "train_1.csv").unlink()
    sales = load(warehouse, raw_dir, "fourth")["sales"]
    assert sales.rebuild_reason == "train_1.csv was loaded before and is gone"
    with duckdb.connect(str(warehouse)) as con:
        original = rows(con, "SELECT Sales FROM raw.sales WHERE Store = 1 AND Date = '2015-07-31'")
    assert original != [(4000,)] and sales.rows_corrected == 1


def test_a_plan_of_days_that_became_history_is_dropped_and_counted(small, tmp_path):
    raw_dir, warehouse = private(small, tmp_path)
    plan_days = pd.read_csv(raw_dir / "test.csv")["Date"].sort_values().unique()
    # The history catches up with the plan's first three days (store 2 only on two of them: a gap is no error).
    write_delta(raw_dir, "train_20150803.csv", [
        f"{s},{pd.Timestamp(d).isoweekday()},{d},0,0,0,0,0,0" for s in (1, 2) for d in plan_days[:3]
        if not (s == 2 and d == plan_days[2])])
    loads = load(warehouse, raw_dir, "second")
    assert loads["plan"].plan_days_dropped == 3 * 2 and loads["plan"].n_rows == 39 * 2
    assert (loads["plan"].rows_new, loads["plan"].rows_corrected, loads["plan"].rows_removed) == (0, 0, 3 * 2)
    with duckdb.connect(str(warehouse)) as con:
        assert rows(con, "SELECT min(Date) FROM raw.plan")[0][0] == pd.Timestamp(plan_days[3]).date()


def test_stores_and_plan_are_logged_once_per_version(small, tmp_path):
    raw_dir, warehouse = private(small, tmp_path)
    load(warehouse, raw_dir, "second")
    stores = pd.read_csv(raw_dir / "store.csv")
    stores.loc[0, "CompetitionDistance"] += 10
    stores.to_csv(raw_dir / "store.csv", index=False)
    loads = load(warehouse, raw_dir, "third")
    [logged] = loads["stores"].files_loaded
    assert (logged.file_name, logged.n_rows, logged.rows_corrected, logged.first_date) == ("store.csv", 2, 1, None)
    with duckdb.connect(str(warehouse)) as con:
        assert rows(con, "SELECT file_name, run_id FROM meta.file_loads ORDER BY loaded_at, file_name") == [
            ("store.csv", "first"), ("test.csv", "first"), ("train.csv", "first"), ("store.csv", "third")]


# ------------------------------------------------------------------- bad delta files change nothing

BAD_FILES = {
    "wrong_column": (HEADER.replace("Sales", "Revenue"), ["1,6,2015-08-01,5000,500,1,0,0,0"],
                     [r"train_bad\.csv: columns", r"missing: \['Sales'\]", r"unexpected: \['Revenue'\]"]),
    "missing_column": (HEADER.replace(",Customers", ""), ["1,6,2015-08-01,5000,1,0,0,0"],
                       [r"train_bad\.csv: columns", r"missing: \['Customers'\]"]),
    "unparseable": (HEADER, ["1,6,2015-08-01,5000,500,1,0,0,0", "2,6,2015-08-01,lots,600,1,0,0,0"],
                    [r"train_bad\.csv: could not be read", r'column "Sales"', r'"lots"']),
    "fraction": (HEADER, ["1,6,2015-08-01,5000.5,500,1,0,0,0"],
                 [r"train_bad\.csv: column Sales must hold whole numbers", r"Store=1, Date=2015-08-01, Sales=5000\.5"]),
    "same_key_twice": (HEADER, ["1,6,2015-08-01,5000,500,1,0,0,0", "1,6,2015-08-01,5100,500,1,0,0,0",
                                "2,6,2015-08-01,6000,600,1,0,0,0"],
                       [r"train_bad\.csv: 1 \(Store, Date\) key\(s\) appear more than once with different values "
                        r"\(column Sales\)", r"Store=1, Date=2015-08-01: Sales=5000 vs Sales=5100"]),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_a_bad_delta_file_names_file_column_and_samples(small, tmp_path, case):
    header, lines, expected = BAD_FILES[case]
    raw_dir, warehouse = private(small, tmp_path)
    before = snapshot(warehouse)
    write_delta(raw_dir, "train_bad.csv", lines, header=header)
    with duckdb.connect(str(warehouse)) as con:
        with pytest.raises(RawInputError) as error:
            load_incoming(con, raw_dir)
        discard_incoming(con)
    for pattern in expected:
        assert pd.Series([str(error.value)]).str.contains(pattern).all(), (pattern, str(error.value))
    assert snapshot(warehouse) == before


def test_unknown_store_in_a_delta_names_the_file_store_and_changes_nothing(small, tmp_path):
    """Through the validation step alone and through the raw asset: the merged table fails GX's store rule, and
    the message names the delta file the failing rows came from."""
    raw_dir, warehouse = private(small, tmp_path)
    before = snapshot(warehouse)
    write_delta(raw_dir, "train_20150801.csv", ["1,6,2015-08-01,5000,500,1,0,0,0", "99,6,2015-08-01,6000,600,1,0,0,0"])
    with duckdb.connect(str(warehouse)) as con:
        loads = {l.table: l for l in load_incoming(con, raw_dir)}
    outcomes = validate_incoming(warehouse)
    assert not outcomes["sales"].success
    with duckdb.connect(str(warehouse)) as con:
        message = failure_lines(outcomes, {t: l.source_file for t, l in loads.items()},
                                row_files=lambda table, sample: incoming_row_files(con, table, sample))
        discard_incoming(con)
    assert "- train_20150801.csv (raw.sales), column Store: 1 of" in message
    assert "Store=99, Date=2015-08-01" in message
    assert snapshot(warehouse) == before

    result = materialize_pipeline(warehouse.parent, raw_dir, selection=RAW_KEYS)
    assert not result.success
    message = failure_message(result)
    assert "raw tables left unchanged" in message
    assert "- train_20150801.csv (raw.sales), column Store" in message and "Store=99, Date=2015-08-01" in message
    assert snapshot(warehouse) == before
