"""The raw input layout (Kaggle's Rossmann files): the one declaration of each raw file's columns and types.

Ingestion (:mod:`ingestion.load`), the Great Expectations suites and the dbt sources are derived from or checked
against this module.
"""

from __future__ import annotations

RAW_SCHEMA = "raw"

# Kaggle's column names and the types they are loaded with; StateHoliday stays text ('0','a','b','c').
RAW_COLUMNS: dict[str, dict[str, str]] = {
    "sales": {
        "Store": "INTEGER",
        "DayOfWeek": "INTEGER",
        "Date": "DATE",
        "Sales": "INTEGER",
        "Customers": "INTEGER",
        "Open": "INTEGER",
        "Promo": "INTEGER",
        "StateHoliday": "VARCHAR",
        "SchoolHoliday": "INTEGER",
    },
    "stores": {
        "Store": "INTEGER",
        "StoreType": "VARCHAR",
        "Assortment": "VARCHAR",
        "CompetitionDistance": "DOUBLE",
        "CompetitionOpenSinceMonth": "INTEGER",
        "CompetitionOpenSinceYear": "INTEGER",
        "Promo2": "INTEGER",
        "Promo2SinceWeek": "INTEGER",
        "Promo2SinceYear": "INTEGER",
        "PromoInterval": "VARCHAR",
    },
    "plan": {
        "Id": "INTEGER",
        "Store": "INTEGER",
        "DayOfWeek": "INTEGER",
        "Date": "DATE",
        "Open": "INTEGER",
        "Promo": "INTEGER",
        "StateHoliday": "VARCHAR",
        "SchoolHoliday": "INTEGER",
    },
}

# File stems per table; the first existing candidate wins. The plan is optional.
RAW_FILES: dict[str, tuple[str, ...]] = {
    "sales": ("train.csv", "train.csv.gz"),
    "stores": ("store.csv", "store.csv.gz"),
    "plan": ("test.csv", "test.csv.gz"),
}
# Beside the sales file: files of new or corrected days in its layout, merged on SALES_KEY in name order.
SALES_DELTA_GLOBS = ("train_*.csv", "train_*.csv.gz")
SALES_KEY = ("Store", "Date")
OPTIONAL_TABLES = {"plan"}
OPTIONAL_COLUMNS = {"plan": {"Id"}}
# Blanks in exports show up as empty fields or as the literal NULL / NA.
NULL_STRINGS = ["", "NULL", "NA"]

# Kaggle's code lists. The GX suites check the raw files against them; tests/test_raw_layout.py checks that the dbt
# accepted_values tests on the columns carrying them (state_holiday, store_type, ...) list the same values.
STATE_HOLIDAYS = ("0", "a", "b", "c")  # none, public holiday, Easter, Christmas
STORE_TYPES = ("a", "b", "c", "d")
ASSORTMENTS = ("a", "b", "c")  # basic, extra, extended
PROMO_INTERVALS = ("Jan,Apr,Jul,Oct", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec")


def create_table_sql(table: str, schema: str = RAW_SCHEMA) -> str:
    """``CREATE OR REPLACE TABLE`` of an empty raw table with the layout's columns and types."""
    columns = ", ".join(f'"{column}" {sql_type}' for column, sql_type in RAW_COLUMNS[table].items())
    return f"CREATE OR REPLACE TABLE {schema}.{table} ({columns})"
