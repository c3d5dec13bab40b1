import gzip
import os
from pathlib import Path

import duckdb
import pytest

from ingestion.load import (
    RawInputError,
    discard_incoming,
    find_raw_files,
    load_incoming,
    promote_incoming,
)

SALES_HEADER = "Store,DayOfWeek,Date,Sales,Customers,Open,Promo,StateHoliday,SchoolHoliday"
STORES_HEADER = ("Store,StoreType,Assortment,CompetitionDistance,CompetitionOpenSinceMonth,"
                 "CompetitionOpenSinceYear,Promo2,Promo2SinceWeek,Promo2SinceYear,PromoInterval")


def write_files(folder: Path, sales_rows: list[str], *, plan: str | None = None, gz: bool = False) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    sales = "\n".join([SALES_HEADER, *sales_rows]) + "\n"
    if gz:
        with gzip.open(folder / "train.csv.gz", "wt") as fh:
            fh.write(sales)
    else:
        (folder / "train.csv").write_text(sales)
    (folder / "store.csv").write_text(
        STORES_HEADER + "\n1,c,a,1270,9,2008,0,,,\n2,a,a,,NULL,NULL,1,13,2010,\"Jan,Apr,Jul,Oct\"\n")
    if plan is not None:
        (folder / "test.csv").write_text(plan)
    return folder


GOOD_SALES = ["1,5,2015-07-31,5263,555,1,1,0,1", "2,5,2015-07-31,6064,625,1,1,a,1",
              "1,4,2015-07-30,0,0,0,0,0,0"]


def test_loads_types_blanks_and_gzip(tmp_path):
    folder = write_files(tmp_path / "in", GOOD_SALES, gz=True)
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    loads = {l.table: l.n_rows for l in load_incoming(con, folder)}
    assert loads == {"sales": 3, "stores": 2, "plan": 0}
    promote_incoming(con)
    types = dict(con.execute("SELECT column_name, data_type FROM information_schema.columns "
                             "WHERE table_schema='raw' AND table_name='sales'").fetchall())
    assert types["StateHoliday"] == "VARCHAR" and types["Date"] == "DATE" and types["Sales"] == "INTEGER"
    assert con.execute("SELECT CompetitionDistance, CompetitionOpenSinceMonth, PromoInterval "
                       "FROM raw.stores WHERE Store = 2").fetchone() == (None, None, "Jan,Apr,Jul,Oct")
    assert con.execute("SELECT count(*) FROM raw.plan").fetchone()[0] == 0
    # The side schema is gone after the swap.
    assert con.execute("SELECT count(*) FROM duckdb_schemas() WHERE schema_name='raw_incoming'").fetchone()[0] == 0


def test_reload_replaces_and_plan_without_id(tmp_path):
    folder = write_files(tmp_path / "in", GOOD_SALES,
                         plan="Store,DayOfWeek,Date,Open,Promo,StateHoliday,SchoolHoliday\n1,6,2015-08-01,1,0,0,0\n")
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    for _ in range(2):
        load_incoming(con, folder)
        promote_incoming(con)
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 3
    assert con.execute("SELECT Id, Store FROM raw.plan").fetchall() == [(None, 1)]


def test_bad_files_raise_clear_errors_and_keep_previous_tables(tmp_path):
    con = duckdb.connect(str(tmp_path / "w.duckdb"))
    load_incoming(con, write_files(tmp_path / "good", GOOD_SALES))
    promote_incoming(con)

    with pytest.raises(RawInputError, match="does not exist"):
        find_raw_files(tmp_path / "nowhere")
    missing_store = tmp_path / "nostore"
    write_files(missing_store, GOOD_SALES)
    os.remove(missing_store / "store.csv")
    with pytest.raises(RawInputError, match="store.csv"):
        load_incoming(con, missing_store)
    with pytest.raises(RawInputError, match="could not be read"):
        load_incoming(con, write_files(tmp_path / "badvalue", ["1,5,2015-07-31,lots,555,1,1,0,1"]))
    wrong_columns = tmp_path / "wrongcols"
    write_files(wrong_columns, GOOD_SALES)
    (wrong_columns / "train.csv").write_text("Store,Date,Revenue\n1,2015-07-31,5\n")
    with pytest.raises(RawInputError, match="missing: \\['DayOfWeek'"):
        load_incoming(con, wrong_columns)
    discard_incoming(con)
    assert con.execute("SELECT count(*) FROM raw.sales").fetchone()[0] == 3
