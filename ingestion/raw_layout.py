"""The raw input layout (Kaggle's Rossmann files): the one declaration of each raw file's columns and types.

Ingestion (:mod:`ingestion.load`), the Great Expectations suites and the dbt sources are derived from or checked
against this module.
"""

from __future__ import annotations

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
OPTIONAL_TABLES = {"plan"}
OPTIONAL_COLUMNS = {"plan": {"Id"}}
# Blanks in exports show up as empty fields or as the literal NULL / NA.
NULL_STRINGS = ["", "NULL", "NA"]
