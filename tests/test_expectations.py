"""Tests for the Great Expectations suites (expectations/).

Tiny tables in a temporary DuckDB; each bad input must produce a *blocking* failure naming the
expectation and showing sample unexpected values. The real-data test runs only when
ROSSMANN_DIR points at a folder with train.csv[.gz] and store.csv.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from expectations import ValidationOutcome, validate_table
from expectations.runner import TableNotFoundError
from expectations.suites import SUITES
from ingestion.load import load_incoming, promote_incoming
from ingestion.raw_layout import RAW_COLUMNS, create_table_sql
HISTORY_START = dt.date(2015, 6, 1)
HISTORY_DAYS = 14
LAST_HISTORY = HISTORY_START + dt.timedelta(days=HISTORY_DAYS - 1)
STORES = [1, 2, 3]


# ---------------------------------------------------------------------------------------- data


def good_stores() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "Store": STORES,
            "StoreType": ["a", "c", "d"],
            "Assortment": ["a", "c", "b"],
            "CompetitionDistance": [1270.0, None, 570.0],
            "CompetitionOpenSinceMonth": [9, None, 11],
            "CompetitionOpenSinceYear": [2008, None, 2007],
            "Promo2": [0, 1, 1],
            "Promo2SinceWeek": [None, 13, 45],
            "Promo2SinceYear": [None, 2010, 2009],
            "PromoInterval": [None, "Jan,Apr,Jul,Oct", "Mar,Jun,Sept,Dec"],
        }
    )


def good_sales() -> pd.DataFrame:
    rows = []
    for store in STORES:
        for i in range(HISTORY_DAYS):
            d = HISTORY_START + dt.timedelta(days=i)
            is_open = int(d.isoweekday() != 7)
            rows.append(
                {
                    "Store": store,
                    "DayOfWeek": d.isoweekday(),
                    "Date": d,
                    "Sales": (4000 + 100 * store + 10 * i) * is_open,
                    "Customers": (400 + store + i) * is_open,
                    "Open": is_open,
                    "Promo": int(i < 5),
                    "StateHoliday": "a" if i == 3 else "0",
                    "SchoolHoliday": int(i in (6, 7)),
                }
            )
    return pd.DataFrame(rows)


def good_plan(days: int = 7, start: dt.date | None = None) -> pd.DataFrame:
    start = start or LAST_HISTORY + dt.timedelta(days=1)
    rows = []
    for store in STORES:
        for i in range(days):
            d = start + dt.timedelta(days=i)
            rows.append(
                {
                    "Id": len(rows) + 1,
                    "Store": store,
                    "DayOfWeek": d.isoweekday(),
                    "Date": d,
                    "Open": None if (store == 2 and i == 0) else int(d.isoweekday() != 7),  # NULL Open allowed
                    "Promo": int(i < 3),
                    "StateHoliday": "0",
                    "SchoolHoliday": 0,
                }
            )
    return pd.DataFrame(rows)


def write_warehouse(path: Path, *, sales=None, stores=None, plan=None) -> Path:
    """Create raw.sales / raw.stores / raw.plan with the raw layout's column types."""
    frames = {
        "sales": good_sales() if sales is None else sales,
        "stores": good_stores() if stores is None else stores,
        "plan": pd.DataFrame(columns=list(good_plan().columns)) if plan is None else plan,
    }
    con = duckdb.connect(str(path))
    try:
        con.execute("CREATE SCHEMA IF NOT EXISTS raw")
        for table, df in frames.items():
            con.execute(create_table_sql(table))
            if len(df):
                con.register("incoming", df)
                cols = ", ".join(f'"{c}"' for c in df.columns)
                con.execute(f"INSERT INTO raw.{table} ({cols}) SELECT {cols} FROM incoming")
                con.unregister("incoming")
    finally:
        con.close()
    return path


@pytest.fixture
def warehouse(tmp_path: Path) -> Path:
    return write_warehouse(tmp_path / "warehouse.duckdb")


def blocking(outcome: ValidationOutcome, expectation_type: str, column: str | list[str]) -> dict:
    """The blocking failure for this expectation type and column(s); fails the test if absent."""
    columns = [column] if isinstance(column, str) else column
    for f in outcome.blocking_failures:
        if f["expectation_type"] == expectation_type and f["columns"] == columns:
            return f
    pytest.fail(
        f"no blocking {expectation_type} on {columns}; got: "
        + repr([(f["expectation_type"], f["columns"]) for f in outcome.blocking_failures])
    )


# --------------------------------------------------------------------------------------- tests


def test_suites_cover_the_raw_layout():
    """One suite per raw table, its column set and types taken from ingestion.raw_layout."""
    assert set(SUITES) == {f"raw.{table}" for table in RAW_COLUMNS}
    for table, columns in RAW_COLUMNS.items():
        spec = SUITES[f"raw.{table}"]
        assert spec.columns == columns
        expectations = spec.build()
        assert all(e.meta["severity"] in ("error", "warn") for e in expectations)
        column_set = next(e for e in expectations if e.expectation_type == "expect_table_columns_to_match_set")
        assert column_set.column_set == [*columns, *spec.derived_columns]
        typed = {e.column for e in expectations if e.expectation_type == "expect_column_values_to_be_of_type"}
        assert typed == set(columns)


@pytest.mark.parametrize("table", ["raw.sales", "raw.stores", "raw.plan"])
def test_good_raw_data_passes(warehouse: Path, table: str):
    outcome = validate_table(warehouse, table, data_docs_dir=None)
    assert outcome.success, outcome.summary_markdown()
    assert outcome.blocking_failures == []
    assert outcome.warnings == []
    assert outcome.n_expectations == len(SUITES[table].build())
    assert outcome.n_rows == {"raw.sales": 42, "raw.stores": 3, "raw.plan": 0}[table]


def test_empty_plan_passes(warehouse: Path):
    outcome = validate_table(warehouse, "raw.plan", data_docs_dir=None)
    assert outcome.success and outcome.n_rows == 0 and not outcome.warnings


def test_plan_after_history_passes_with_null_open_warning(tmp_path: Path):
    path = write_warehouse(tmp_path / "w.duckdb", plan=good_plan(days=42))
    outcome = validate_table(path, "raw.plan", data_docs_dir=None)
    assert outcome.success, outcome.summary_markdown()
    assert outcome.n_rows == 3 * 42
    assert [(w["expectation_type"], w["column"], w["unexpected_count"]) for w in outcome.warnings] == [
        ("expect_column_values_to_not_be_null", "Open", 1)
    ]


def test_plan_with_null_ids_and_all_null_text_passes(tmp_path: Path):
    plan = good_plan(days=2)
    plan["Id"] = None  # Id may be NULL: DuckDB then hands pandas a nullable Int32 column
    path = write_warehouse(tmp_path / "w.duckdb", plan=plan)
    outcome = validate_table(path, "raw.plan")
    assert outcome.success, outcome.summary_markdown()

    stores = good_stores()
    stores["PromoInterval"] = None  # all-NULL VARCHAR arrives as object dtype; still type str
    stores["Promo2"] = 0
    stores[["Promo2SinceWeek", "Promo2SinceYear"]] = None
    path = write_warehouse(tmp_path / "w2.duckdb", stores=stores)
    outcome = validate_table(path, "raw.stores")
    assert outcome.success and not outcome.warnings, outcome.summary_markdown()


def _dup_sales():
    s = good_sales()
    return pd.concat([s, s.iloc[[5]]], ignore_index=True)


def _unknown_store():
    s = good_sales()
    s.loc[0, "Store"] = 999
    return s


def _on_closed_day(column: str, value: int) -> pd.DataFrame:
    s = good_sales()
    s.loc[s.index[s["Open"] == 0][0], column] = value
    return s


def _sales_on_closed_day():
    return _on_closed_day("Sales", 1234)


def _bad_state_holiday():
    s = good_sales()
    s.loc[7, "StateHoliday"] = "x"
    return s


def _negative_customers():
    s = good_sales()
    s.loc[2, "Customers"] = -5
    return s


BAD_SALES = {
    "duplicate_store_date": (_dup_sales, "expect_compound_columns_to_be_unique", ["Store", "Date"],
                             {"Store": 1, "Date": (HISTORY_START + dt.timedelta(days=5)).isoformat()}),
    "unknown_store": (_unknown_store, "expect_column_values_to_be_in_set", "Store", 999),
    "sales_on_closed_day": (_sales_on_closed_day, "expect_column_values_to_be_in_set", "Sales", 1234),
    "customers_on_closed_day": (lambda: _on_closed_day("Customers", 17), "expect_column_values_to_be_in_set",
                                "Customers", 17),
    "bad_state_holiday": (_bad_state_holiday, "expect_column_values_to_be_in_set", "StateHoliday", "x"),
    "negative_customers": (_negative_customers, "expect_column_values_to_be_between", "Customers", -5),
}


@pytest.mark.parametrize("case", list(BAD_SALES))
def test_bad_sales_is_blocking(tmp_path: Path, case: str):
    make, expectation_type, column, sample = BAD_SALES[case]
    path = write_warehouse(tmp_path / "w.duckdb", sales=make())
    outcome = validate_table(path, "raw.sales", data_docs_dir=None)
    assert not outcome.success
    failure = blocking(outcome, expectation_type, column)
    assert failure["severity"] == "error"
    assert failure["unexpected_count"] >= 1
    assert sample in failure["sample_unexpected_values"], failure
    md = outcome.summary_markdown()
    assert "FAILED" in md and expectation_type in md


def test_sales_on_closed_day_uses_row_condition(tmp_path: Path):
    path = write_warehouse(tmp_path / "w.duckdb", sales=_sales_on_closed_day())
    failure = blocking(validate_table(path, "raw.sales"), "expect_column_values_to_be_in_set", "Sales")
    assert failure["kwargs"]["value_set"] == [0]
    assert "Open" in str(failure["kwargs"]["row_condition"])
    # only closed rows are in the domain: 3 stores x 2 Sundays in the 14 days
    assert failure["element_count"] == 6 and failure["unexpected_count"] == 1


def test_plan_overlapping_history_is_blocking(tmp_path: Path):
    plan = good_plan(days=5, start=LAST_HISTORY - dt.timedelta(days=1))  # two days overlap
    path = write_warehouse(tmp_path / "w.duckdb", plan=plan)
    outcome = validate_table(path, "raw.plan", data_docs_dir=None)
    assert not outcome.success
    failure = blocking(outcome, "expect_column_values_to_be_between", "Date")
    assert failure["unexpected_count"] == 2 * len(STORES)
    assert {"Store": 1, "Date": LAST_HISTORY.isoformat()} in failure["sample_unexpected_rows"]
    assert (LAST_HISTORY - dt.timedelta(days=1)).isoformat() in failure["sample_unexpected_values"]
    assert LAST_HISTORY.isoformat() in failure["sample_unexpected_values"]


def test_plan_duplicates_and_unknown_store_are_blocking(tmp_path: Path):
    plan = good_plan(days=3)
    plan = pd.concat([plan, plan.iloc[[0]]], ignore_index=True)
    plan.loc[1, "Store"] = 42
    path = write_warehouse(tmp_path / "w.duckdb", plan=plan)
    outcome = validate_table(path, "raw.plan")
    blocking(outcome, "expect_compound_columns_to_be_unique", ["Store", "Date"])
    assert 42 in blocking(outcome, "expect_column_values_to_be_in_set", "Store")["sample_unexpected_values"]


def test_bad_stores_are_blocking(tmp_path: Path):
    stores = good_stores()
    stores.loc[1, "StoreType"] = "z"
    stores.loc[2, "PromoInterval"] = "Jan,Feb"
    stores.loc[0, "CompetitionOpenSinceMonth"] = 13
    stores = pd.concat([stores, stores.iloc[[0]]], ignore_index=True)
    path = write_warehouse(tmp_path / "w.duckdb", stores=stores)
    outcome = validate_table(path, "raw.stores")
    assert not outcome.success
    assert "z" in blocking(outcome, "expect_column_values_to_be_in_set", "StoreType")["sample_unexpected_values"]
    assert "Jan,Feb" in blocking(outcome, "expect_column_values_to_be_in_set", "PromoInterval")[
        "sample_unexpected_values"]
    assert 13 in blocking(outcome, "expect_column_values_to_be_in_set", "CompetitionOpenSinceMonth")[
        "sample_unexpected_values"]
    assert 1 in blocking(outcome, "expect_column_values_to_be_unique", "Store")["sample_unexpected_values"]


def test_schema_drift_is_blocking(tmp_path: Path):
    path = write_warehouse(tmp_path / "w.duckdb")
    con = duckdb.connect(str(path))
    con.execute("ALTER TABLE raw.sales ADD COLUMN extra INTEGER")
    con.execute("ALTER TABLE raw.sales ALTER COLUMN Sales TYPE BIGINT")
    con.close()
    outcome = validate_table(path, "raw.sales")
    assert not outcome.success
    assert blocking(outcome, "expect_table_columns_to_match_set", [])["observed_value"] == {"unexpected": ["extra"]}
    assert blocking(outcome, "expect_column_values_to_be_of_type", "Sales")["observed_value"] == "int64"


def test_missing_columns_fail_instead_of_raising(tmp_path: Path):
    path = write_warehouse(tmp_path / "w.duckdb", plan=good_plan(days=3))
    con = duckdb.connect(str(path))
    con.execute('ALTER TABLE raw.sales DROP COLUMN "Date"')  # also breaks raw.plan's last_history_date
    con.close()
    sales = validate_table(path, "raw.sales")
    assert not sales.success
    assert "Date" in blocking(sales, "expect_table_columns_to_match_set", [])["observed_value"]["missing"]
    assert "does not exist" in blocking(sales, "expect_compound_columns_to_be_unique", ["Store", "Date"])["exception"]
    plan = validate_table(path, "raw.plan")
    assert not plan.success
    failure = blocking(plan, "expect_column_values_to_be_between", "Date")
    assert "last_history_date" in failure["exception"]
    assert plan.n_expectations == len(SUITES["raw.plan"].build())


def test_warning_does_not_block(tmp_path: Path):
    sales = good_sales()
    sales.loc[0, "DayOfWeek"] = (sales.loc[0, "DayOfWeek"] % 7) + 1  # inconsistent with Date, still 1..7
    path = write_warehouse(tmp_path / "w.duckdb", sales=sales)
    outcome = validate_table(path, "raw.sales")
    assert outcome.success
    assert [w["expectation_type"] for w in outcome.warnings] == ["expect_column_pair_values_to_be_equal"]
    assert "PASSED with warnings" in outcome.summary_markdown()


def test_data_docs_written(warehouse: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError(f"network access attempted: {args}")

    monkeypatch.setattr(socket.socket, "connect", no_network)
    monkeypatch.setattr(socket, "create_connection", no_network)
    docs = tmp_path / "reports" / "data_docs"
    for table in ("raw.stores", "raw.sales", "raw.plan"):
        outcome = validate_table(warehouse, table, data_docs_dir=docs)
        assert outcome.data_docs_index == docs / "index.html"
    index = docs / "index.html"
    assert index.exists()
    html = index.read_text()
    for table in ("raw.stores", "raw.sales", "raw.plan"):
        assert table in html
    assert list(docs.glob("validations/**/*.html"))
    assert list(docs.glob("expectations/**/*.html"))


def test_data_docs_keep_only_recent_runs(warehouse: Path, tmp_path: Path):
    docs = tmp_path / "docs"
    for _ in range(3):
        validate_table(warehouse, "raw.stores", data_docs_dir=docs, keep_results=2)
    assert len(list((docs / ".gx" / "validations").rglob("*.json"))) == 2
    assert len(list((docs / "validations").rglob("*.html"))) == 2


def test_accepts_open_connection(warehouse: Path):
    con = duckdb.connect(str(warehouse))  # read-write, as an orchestrator might hold it
    try:
        outcome = validate_table(con, "raw.sales")
        assert outcome.success
        con.execute("SELECT 1").fetchall()  # still usable: not closed by validate_table
    finally:
        con.close()


def test_accepts_in_memory_connection_with_views_over_attached_file(warehouse: Path):
    """The orchestration validates incoming files through views in an in-memory connection."""
    con = duckdb.connect()
    try:
        con.execute(f"ATTACH '{warehouse.as_posix()}' AS wh (READ_ONLY)")
        con.execute("CREATE SCHEMA raw")
        for table in ("sales", "stores", "plan"):
            con.execute(f"CREATE VIEW raw.{table} AS SELECT * FROM wh.raw.{table}")
        for table in ("raw.sales", "raw.stores", "raw.plan"):
            outcome = validate_table(con, table)
            assert outcome.success, outcome.summary_markdown()
    finally:
        con.close()


def test_missing_and_unknown_tables(tmp_path: Path, warehouse: Path):
    with pytest.raises(KeyError):
        validate_table(warehouse, "raw.nope")
    with pytest.raises(KeyError):
        validate_table(warehouse, "marts.fct_store_daily_features")  # dbt tests own the marts' rules
    con = duckdb.connect(str(warehouse))
    con.execute("DROP TABLE raw.stores")  # a reference table of raw.sales' suite
    con.close()
    with pytest.raises(TableNotFoundError):
        validate_table(warehouse, "raw.sales")
    with pytest.raises(FileNotFoundError):
        validate_table(tmp_path / "missing.duckdb", "raw.sales")


def test_usage_statistics_off_through_the_context_config(monkeypatch: pytest.MonkeyPatch, warehouse: Path):
    from expectations.runner import _make_context

    monkeypatch.delenv("GX_ANALYTICS_ENABLED", raising=False)
    assert _make_context(None).config.analytics_enabled is False
    validate_table(warehouse, "raw.stores")
    assert "GX_ANALYTICS_ENABLED" not in os.environ  # library code leaves the environment alone


def test_outcome_is_json_friendly(tmp_path: Path):
    import json

    path = write_warehouse(tmp_path / "w.duckdb", sales=_dup_sales())
    outcome = validate_table(path, "raw.sales")
    json.dumps(outcome.to_dict())


# ------------------------------------------------------------------------------------ real data

ROSSMANN_DIR = os.environ.get("ROSSMANN_DIR")


@pytest.mark.skipif(not ROSSMANN_DIR, reason="set ROSSMANN_DIR to the folder with train.csv[.gz] and store.csv")
def test_real_rossmann_data_passes(tmp_path: Path):
    path = tmp_path / "warehouse.duckdb"
    con = duckdb.connect(str(path))
    load_incoming(con, Path(ROSSMANN_DIR))  # the platform's loader: types from ingestion.raw_layout
    promote_incoming(con)
    con.close()

    for table in ("raw.stores", "raw.sales", "raw.plan"):
        t0 = time.perf_counter()
        outcome = validate_table(path, table, data_docs_dir=tmp_path / "docs")
        assert outcome.success, outcome.summary_markdown()
        if table == "raw.sales":
            assert outcome.n_rows > 100_000
            assert time.perf_counter() - t0 < 60
    assert (tmp_path / "docs" / "index.html").exists()
