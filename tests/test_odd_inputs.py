"""Odd but valid inputs load (BOM, CRLF); wrong encodings and non-finite numbers are refused with a message naming
the file, the place and the column (ingestion.load.load_incoming). Through the whole pipeline, with quotes and
spaces in the paths and a latin-1 store.csv: tests/test_bad_input_catalogue.py."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from ingestion.load import RawInputError, _encoding_error, load_incoming

SALES = ("Store,DayOfWeek,Date,Sales,Customers,Open,Promo,StateHoliday,SchoolHoliday\n"
         "1,5,2015-07-31,5263,555,1,1,0,1\n2,5,2015-07-31,6064,625,1,1,a,1\n")
STORES = ("Store,StoreType,Assortment,CompetitionDistance,CompetitionOpenSinceMonth,CompetitionOpenSinceYear,"
          "Promo2,Promo2SinceWeek,Promo2SinceYear,PromoInterval\n"
          "1,c,a,{distance},9,2008,0,,,\n2,a,a,570,,,1,13,2010,\"Jan,Apr,Jul,Oct\"\n")


def write(folder: Path, *, sales: bytes | None = None, stores: bytes | None = None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "train.csv").write_bytes(sales if sales is not None else SALES.encode())
    (folder / "store.csv").write_bytes(stores if stores is not None else STORES.format(distance=1270).encode())
    return folder


def load(folder: Path, tmp_path: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(str(tmp_path / "scratch.duckdb"))
    load_incoming(con, folder)
    return con


@pytest.mark.parametrize("variant", ["bom", "crlf", "bom_crlf"])
def test_utf8_bom_and_crlf_load_like_plain_files(tmp_path, variant):
    def encode(text: str) -> bytes:
        text = text.replace("\n", "\r\n") if "crlf" in variant else text
        return ("\ufeff" + text if "bom" in variant else text).encode()

    stores = STORES.format(distance=1270).replace("Jan,Apr", "Jän,Apr")  # a non-ASCII UTF-8 value survives
    con = load(write(tmp_path / "in", sales=encode(SALES), stores=encode(stores)), tmp_path)
    assert con.execute("SELECT Store, Sales, StateHoliday FROM raw_incoming.sales ORDER BY Store").fetchall() == [
        (1, 5263, "0"), (2, 6064, "a")]
    assert con.execute("SELECT CompetitionDistance, PromoInterval FROM raw_incoming.stores ORDER BY Store"
                       ).fetchall() == [(1270.0, None), (570.0, "Jän,Apr,Jul,Oct")]


def test_latin1_header_is_refused_before_reading(tmp_path):
    folder = write(tmp_path / "in", sales=SALES.replace("Store,", "Störe,", 1).encode("latin-1"))
    with pytest.raises(RawInputError, match=r"train.csv is not UTF-8: .* at byte offset 2 \(line 1\)"):
        load(folder, tmp_path)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_encoding_error_offset_does_not_depend_on_chunking(tmp_path, chunk):
    path = tmp_path / "x.csv"
    data = "a,€\n".encode() * 3 + b"b,J\xe4n\n" + "c,€\n".encode()
    path.write_bytes(data)
    assert f"byte offset {data.index(b'J') + 1} (line 4), column €, value 'J\\xe4n'" in _encoding_error(path, chunk)
    path.write_bytes("a,€ä\n".encode() * 3)
    assert _encoding_error(path, chunk) is None


@pytest.mark.parametrize("value", ["inf", "-Infinity", "nan", "1e39"])
def test_non_finite_competition_distance_names_file_column_and_store(tmp_path, value):
    folder = write(tmp_path / "in", stores=STORES.format(distance=value).encode())
    with pytest.raises(RawInputError, match=r"store.csv: column CompetitionDistance has 1 value\(s\) that are not "
                                            r"finite .* e.g. Store 1: "):
        load(folder, tmp_path)
