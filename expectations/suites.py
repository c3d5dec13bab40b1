"""Great Expectations suites as code, one :class:`SuiteDefinition` per warehouse table.

Every expectation carries ``meta={"severity": "error" | "warn"}`` (and the matching GX-native
``severity`` field): a failed ``error`` expectation is *blocking* (downstream must stop), a failed
``warn`` expectation is only reported.

Values that depend on other tables (the known store ids from ``raw.stores``, the last history
date from ``raw.sales``) are *suite parameters* (``{"$PARAMETER": name}``) resolved at validation
time by the suite's ``parameters`` (name -> function of a read-only DuckDB connection), so the
stored suites stay small and stable while the checks always use the current warehouse state.

To add a suite: write a builder returning a list of expectations and add one entry to
:data:`SUITES`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from typing import Any, Callable

import duckdb
import great_expectations.expectations as gxe
from great_expectations.expectations.metadata_types import FailureSeverity
from great_expectations.expectations.row_conditions import Column

from .outcome import SEVERITY_ERROR, SEVERITY_WARN

# Kaggle Rossmann domains
STATE_HOLIDAYS = ["0", "a", "b", "c"]
STORE_TYPES = ["a", "b", "c", "d"]
ASSORTMENTS = ["a", "b", "c"]
PROMO_INTERVALS = ["Jan,Apr,Jul,Oct", "Feb,May,Aug,Nov", "Mar,Jun,Sept,Dec"]
FLAG = [0, 1]
# stand-in for "no history": makes the plan-after-history check vacuous
NO_DATE = datetime.datetime(1900, 1, 1)

# DuckDB type -> accepted pandas dtype names (as judged by expect_column_values_to_be_of_type /
# _in_type_list on the DataFrame fetched with DuckDB's .df(): INTEGER -> int32 or nullable Int32,
# DATE -> datetime64, VARCHAR -> str, DOUBLE -> float64, BOOLEAN -> bool/boolean).
PANDAS_TYPES: dict[str, list[str]] = {
    "INTEGER": ["int32"],
    "BIGINT": ["int64"],
    "DOUBLE": ["float64"],
    "DATE": ["datetime64"],
    "VARCHAR": ["str"],
    "BOOLEAN": ["bool"],
}


@dataclass(frozen=True)
class SuiteDefinition:
    """How to validate one table.

    table: ``schema.table`` in the warehouse (also the suite and data asset name).
    columns: contract columns -> DuckDB type.
    build: returns the expectation list (pure, no database access).
    parameters: suite parameter name -> function computing it from a read-only DuckDB connection.
        A parameter that cannot be computed (e.g. a column it reads is missing) turns the
        expectations using it into failures instead of aborting the validation.
    derived_columns: helper columns added to the fetched DataFrame, name -> (SQL expression,
        source columns it needs). They are included in the column-set expectation; a helper whose
        source columns are missing is simply not added (the column-set check then fails anyway).
    reference_tables: other tables ``parameters`` reads (must exist).
    key_columns: identify a row; failures report them for sample unexpected rows (GX
        ``unexpected_index_column_names``).
    """

    table: str
    columns: dict[str, str]
    build: Callable[[], list[gxe.Expectation]]
    parameters: dict[str, Callable[[duckdb.DuckDBPyConnection], Any]] = field(default_factory=dict)
    derived_columns: dict[str, tuple[str, tuple[str, ...]]] = field(default_factory=dict)
    reference_tables: tuple[str, ...] = ()
    key_columns: tuple[str, ...] = ()

    @property
    def suite_name(self) -> str:
        return self.table


# --------------------------------------------------------------------------------------- helpers


def _sev(severity: str) -> dict[str, Any]:
    native = FailureSeverity.CRITICAL if severity == SEVERITY_ERROR else FailureSeverity.WARNING
    return {"meta": {"severity": severity}, "severity": native}


def error(cls: type[gxe.Expectation], notes: str | None = None, **kwargs: Any) -> gxe.Expectation:
    """A blocking expectation."""
    return cls(**kwargs, **_sev(SEVERITY_ERROR), **({"notes": notes} if notes else {}))


def warn(cls: type[gxe.Expectation], notes: str | None = None, **kwargs: Any) -> gxe.Expectation:
    """A non-blocking expectation (reported as a warning)."""
    return cls(**kwargs, **_sev(SEVERITY_WARN), **({"notes": notes} if notes else {}))


def param(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _schema_expectations(
    columns: dict[str, str],
    derived: dict[str, Any],
    *,
    exact: bool = True,
    integer_family: bool = False,
) -> list[gxe.Expectation]:
    """Column set (exact, incl. helper columns) and per-column types."""
    column_set = [*columns, *derived]
    out: list[gxe.Expectation] = []
    if exact:
        out.append(error(gxe.ExpectTableColumnsToMatchSet, column_set=column_set, exact_match=True))
    else:
        # Marts may append columns after the contract's (e.g. the dbt model's row_source).
        out.append(error(gxe.ExpectTableColumnsToMatchSet, column_set=column_set, exact_match=False,
                         notes="All contract columns must exist; extra columns are allowed."))
    for col, duck_type in columns.items():
        types = PANDAS_TYPES[duck_type]
        if integer_family and duck_type in ("INTEGER", "BIGINT"):
            # _in_type_list compares the dtype itself (not dtype.type like _of_type does), so the
            # nullable extension dtypes DuckDB uses for columns with NULLs must be listed too.
            types = [f"{p}{bits}" for p in ("int", "Int") for bits in (16, 32, 64)]
            types = [t if t.islower() else t + "Dtype" for t in types]
        if len(types) == 1:
            out.append(error(gxe.ExpectColumnValuesToBeOfType, column=col, type_=types[0]))
        else:
            out.append(error(gxe.ExpectColumnValuesToBeInTypeList, column=col, type_list=types))
    return out


def _not_null(cols: list[str], severity: str = SEVERITY_ERROR) -> list[gxe.Expectation]:
    f = error if severity == SEVERITY_ERROR else warn
    return [f(gxe.ExpectColumnValuesToNotBeNull, column=c) for c in cols]


def _in_set(col: str, values: list[Any], severity: str = SEVERITY_ERROR, **kw: Any) -> gxe.Expectation:
    f = error if severity == SEVERITY_ERROR else warn
    return f(gxe.ExpectColumnValuesToBeInSet, column=col, value_set=values, **kw)


def _rng(lo: int, hi: int) -> list[int]:
    # Small integer domains use in-set (vectorised isin) rather than between: GX 1.24's pandas
    # "between" only vectorises int64/float64/datetime64[ns]; int32 columns take a per-row path.
    return list(range(lo, hi + 1))


def _scalar(con: duckdb.DuckDBPyConnection, sql: str) -> Any:
    rows = con.execute(sql).fetchall()  # duckdb 2.x: drain results, fetchone() leaves the connection busy
    return rows[0][0] if rows else None


def _values(con: duckdb.DuckDBPyConnection, sql: str) -> list[Any]:
    return [r[0] for r in con.execute(sql).fetchall()]


def _as_datetime(d: Any) -> datetime.datetime:
    """Date bounds are passed as ``datetime``: GX's pydantic models coerce ISO strings to ``date``,
    which pandas refuses to compare with a datetime64 column."""
    if d is None:
        return NO_DATE
    return datetime.datetime(d.year, d.month, d.day)


def _isodow(col: str) -> tuple[str, tuple[str, ...]]:
    return (f'CAST(isodow("{col}") AS INTEGER)', (col,))


# ------------------------------------------------------------------------------------ raw.sales

SALES_COLUMNS = {
    "Store": "INTEGER", "DayOfWeek": "INTEGER", "Date": "DATE", "Sales": "INTEGER",
    "Customers": "INTEGER", "Open": "INTEGER", "Promo": "INTEGER", "StateHoliday": "VARCHAR",
    "SchoolHoliday": "INTEGER",
}
SALES_DERIVED = {"_isodow_of_Date": _isodow("Date")}


def build_sales_suite() -> list[gxe.Expectation]:
    return [
        *_schema_expectations(SALES_COLUMNS, SALES_DERIVED),
        error(gxe.ExpectTableRowCountToBeBetween, min_value=1, notes="No sales history: nothing to train on."),
        *_not_null(list(SALES_COLUMNS)),
        error(gxe.ExpectCompoundColumnsToBeUnique, column_list=["Store", "Date"],
              notes="One row per store and day."),
        _in_set("DayOfWeek", _rng(1, 7)),
        _in_set("Open", FLAG),
        _in_set("Promo", FLAG),
        _in_set("SchoolHoliday", FLAG),
        _in_set("StateHoliday", STATE_HOLIDAYS),
        error(gxe.ExpectColumnValuesToBeBetween, column="Sales", min_value=0),
        error(gxe.ExpectColumnValuesToBeBetween, column="Customers", min_value=0),
        _in_set("Sales", [0], row_condition=Column("Open") == 0,
                notes="No sales on closed days: rows with Open=0 must have Sales=0."),
        _in_set("Store", param("known_stores"), notes="Every store must exist in raw.stores."),
        warn(gxe.ExpectColumnValuesToBeInSet, column="Customers", value_set=[0],
             row_condition=Column("Open") == 0, notes="Closed days should have no customers."),
        warn(gxe.ExpectColumnValuesToBeBetween, column="Sales", min_value=1, mostly=0.999,
             row_condition=Column("Open") == 1,
             notes="A few open days with Sales=0 are a known Kaggle quirk; many would be suspicious."),
        warn(gxe.ExpectColumnPairValuesToBeEqual, column_A="DayOfWeek", column_B="_isodow_of_Date",
             notes="DayOfWeek must equal ISO day of week of Date (1=Mon..7=Sun)."),
    ]


def known_stores(con: duckdb.DuckDBPyConnection) -> list[int]:
    return _values(con, 'SELECT DISTINCT "Store" FROM raw.stores WHERE "Store" IS NOT NULL ORDER BY 1')


def history_stores(con: duckdb.DuckDBPyConnection) -> list[int]:
    return _values(con, 'SELECT DISTINCT "Store" FROM raw.sales WHERE "Store" IS NOT NULL ORDER BY 1')


def last_sales_date(con: duckdb.DuckDBPyConnection) -> datetime.datetime:
    return _as_datetime(_scalar(con, 'SELECT max("Date") FROM raw.sales'))


SALES_PARAMETERS = {"known_stores": known_stores}


# ----------------------------------------------------------------------------------- raw.stores

STORES_COLUMNS = {
    "Store": "INTEGER", "StoreType": "VARCHAR", "Assortment": "VARCHAR", "CompetitionDistance": "DOUBLE",
    "CompetitionOpenSinceMonth": "INTEGER", "CompetitionOpenSinceYear": "INTEGER", "Promo2": "INTEGER",
    "Promo2SinceWeek": "INTEGER", "Promo2SinceYear": "INTEGER", "PromoInterval": "VARCHAR",
}


def build_stores_suite() -> list[gxe.Expectation]:
    promo2_off = Column("Promo2") == 0
    promo2_on = Column("Promo2") == 1
    return [
        *_schema_expectations(STORES_COLUMNS, {}),
        error(gxe.ExpectTableRowCountToBeBetween, min_value=1),
        *_not_null(["Store", "StoreType", "Assortment", "Promo2"]),
        error(gxe.ExpectColumnValuesToBeUnique, column="Store"),
        _in_set("StoreType", STORE_TYPES),
        _in_set("Assortment", ASSORTMENTS),
        error(gxe.ExpectColumnValuesToBeBetween, column="CompetitionDistance", min_value=0),
        _in_set("CompetitionOpenSinceMonth", _rng(1, 12)),
        _in_set("Promo2", FLAG),
        _in_set("Promo2SinceWeek", _rng(1, 53)),
        _in_set("PromoInterval", PROMO_INTERVALS, notes="Nulls allowed (stores without Promo2)."),
        warn(gxe.ExpectColumnValuesToBeBetween, column="CompetitionOpenSinceYear", min_value=1900, max_value=2100),
        warn(gxe.ExpectColumnValuesToBeBetween, column="Promo2SinceYear", min_value=2000, max_value=2100),
        warn(gxe.ExpectColumnValuesToBeNull, column="PromoInterval", row_condition=promo2_off,
             notes="Stores without Promo2 should have no PromoInterval."),
        *[warn(gxe.ExpectColumnValuesToNotBeNull, column=c, row_condition=promo2_on,
               notes="Stores in Promo2 need its start week/year and interval.")
          for c in ("Promo2SinceWeek", "Promo2SinceYear", "PromoInterval")],
    ]


# ------------------------------------------------------------------------------------- raw.plan

PLAN_COLUMNS = {
    "Id": "INTEGER", "Store": "INTEGER", "DayOfWeek": "INTEGER", "Date": "DATE", "Open": "INTEGER",
    "Promo": "INTEGER", "StateHoliday": "VARCHAR", "SchoolHoliday": "INTEGER",
}
PLAN_DERIVED = {"_isodow_of_Date": _isodow("Date")}


def build_plan_suite() -> list[gxe.Expectation]:
    # No row-count expectation: raw.plan is legitimately EMPTY when there is no test.csv.
    return [
        *_schema_expectations(PLAN_COLUMNS, PLAN_DERIVED),
        *_not_null(["Store", "DayOfWeek", "Date", "Promo", "StateHoliday", "SchoolHoliday"]),
        error(gxe.ExpectCompoundColumnsToBeUnique, column_list=["Store", "Date"]),
        _in_set("DayOfWeek", _rng(1, 7)),
        _in_set("Open", FLAG, notes="NULL allowed (treated as open)."),
        _in_set("Promo", FLAG),
        _in_set("SchoolHoliday", FLAG),
        _in_set("StateHoliday", STATE_HOLIDAYS),
        _in_set("Store", param("known_stores"), notes="Every store must exist in raw.stores."),
        error(gxe.ExpectColumnValuesToBeBetween, column="Date", min_value=param("last_history_date"),
              strict_min=True, notes="Plan dates must be strictly after the last raw.sales date."),
        warn(gxe.ExpectColumnValuesToNotBeNull, column="Open", notes="NULL Open is treated as open."),
        warn(gxe.ExpectColumnValuesToBeUnique, column="Id"),
        warn(gxe.ExpectColumnValuesToBeInSet, column="Store", value_set=param("history_stores"),
             notes="Stores without any sales history cannot be forecast."),
        warn(gxe.ExpectColumnPairValuesToBeEqual, column_A="DayOfWeek", column_B="_isodow_of_Date",
             notes="DayOfWeek must equal ISO day of week of Date (1=Mon..7=Sun)."),
    ]


PLAN_PARAMETERS = {
    "known_stores": known_stores,
    "history_stores": history_stores,
    "last_history_date": last_sales_date,
}


# ------------------------------------------------------------------ marts.fct_store_daily_features

FEATURE_COLUMNS = {
    "store_id": "INTEGER", "sale_date": "DATE", "is_history": "BOOLEAN", "sales": "DOUBLE",
    "customers": "DOUBLE", "is_open": "BOOLEAN", "is_promo": "BOOLEAN", "state_holiday": "VARCHAR",
    "is_state_holiday": "BOOLEAN", "is_school_holiday": "BOOLEAN", "day_of_week": "INTEGER",
    "day_of_month": "INTEGER", "month": "INTEGER", "year": "INTEGER", "week_of_year": "INTEGER",
    "day_of_year": "INTEGER", "store_type": "VARCHAR", "assortment": "VARCHAR",
    "competition_distance_m": "DOUBLE", "is_competition_open": "BOOLEAN",
    "months_since_competition_open": "INTEGER", "is_promo2_active": "BOOLEAN", "is_promo2_month": "BOOLEAN",
    "days_since_state_holiday": "INTEGER", "days_until_state_holiday": "INTEGER",
    "days_since_closed": "INTEGER", "days_until_closed": "INTEGER",
}
FEATURE_DERIVED = {"_isodow_of_sale_date": _isodow("sale_date")}
_DISTANCE_FEATURES = ["days_since_state_holiday", "days_until_state_holiday", "days_since_closed", "days_until_closed"]


def build_features_suite() -> list[gxe.Expectation]:
    history = Column("is_history") == True  # noqa: E712  (builds a GX condition, not a bool)
    plan = Column("is_history") == False  # noqa: E712
    return [
        *_schema_expectations(FEATURE_COLUMNS, FEATURE_DERIVED, exact=False, integer_family=True),
        error(gxe.ExpectTableRowCountToBeBetween, min_value=1),
        *_not_null(["store_id", "sale_date", "is_history", "is_open", "is_promo", "state_holiday",
                    "is_state_holiday", "is_school_holiday", "day_of_week", "day_of_month", "month", "year",
                    "week_of_year", "day_of_year", "store_type", "assortment", "is_competition_open",
                    "is_promo2_active", "is_promo2_month"]),
        error(gxe.ExpectCompoundColumnsToBeUnique, column_list=["store_id", "sale_date"],
              notes="One row per store-day."),
        error(gxe.ExpectColumnDistinctValuesToContainSet, column="is_history", value_set=[True, False],
              notes="Both history rows and plan (horizon) rows must be present."),
        error(gxe.ExpectColumnValuesToNotBeNull, column="sales", row_condition=history,
              notes="History rows carry actual sales."),
        error(gxe.ExpectColumnValuesToBeNull, column="sales", row_condition=plan,
              notes="Plan rows must not carry sales (target leakage)."),
        error(gxe.ExpectColumnValuesToBeNull, column="customers", row_condition=plan,
              notes="Plan rows must not carry customers (leakage)."),
        warn(gxe.ExpectColumnValuesToNotBeNull, column="customers", row_condition=history),
        error(gxe.ExpectColumnValuesToBeBetween, column="sales", min_value=0),
        error(gxe.ExpectColumnValuesToBeBetween, column="customers", min_value=0),
        error(gxe.ExpectColumnValuesToBeBetween, column="sale_date", min_value=param("last_history_date"),
              strict_min=True, row_condition=plan,
              notes="Plan dates must be strictly after the last history date."),
        _in_set("day_of_week", _rng(1, 7)),
        _in_set("day_of_month", _rng(1, 31)),
        _in_set("month", _rng(1, 12)),
        _in_set("week_of_year", _rng(1, 53)),
        _in_set("day_of_year", _rng(1, 366)),
        _in_set("state_holiday", STATE_HOLIDAYS),
        _in_set("store_type", STORE_TYPES),
        _in_set("assortment", ASSORTMENTS),
        error(gxe.ExpectColumnValuesToBeBetween, column="competition_distance_m", min_value=0),
        error(gxe.ExpectColumnValuesToBeBetween, column="months_since_competition_open", min_value=0),
        *[warn(gxe.ExpectColumnValuesToBeInSet, column=c, value_set=_rng(0, 14), notes="Capped at 14.")
          for c in _DISTANCE_FEATURES],
        *_not_null(_DISTANCE_FEATURES, SEVERITY_WARN),
        warn(gxe.ExpectColumnValuesToBeBetween, column="year", min_value=2000, max_value=2100),
        warn(gxe.ExpectColumnValuesToBeInSet, column="sales", value_set=[0],
             row_condition=history & (Column("is_open") == False),  # noqa: E712
             notes="No sales on closed history days."),
        warn(gxe.ExpectColumnValuesToBeInSet, column="is_promo2_active", value_set=[True],
             row_condition=Column("is_promo2_month") == True,  # noqa: E712
             notes="A promo2 month implies promo2 is active."),
        warn(gxe.ExpectColumnPairValuesToBeEqual, column_A="day_of_week", column_B="_isodow_of_sale_date",
             notes="day_of_week must equal ISO day of week of sale_date."),
    ]


def last_mart_history_date(con: duckdb.DuckDBPyConnection) -> datetime.datetime:
    return _as_datetime(_scalar(con, "SELECT max(sale_date) FROM marts.fct_store_daily_features WHERE is_history"))


FEATURES_PARAMETERS = {"last_history_date": last_mart_history_date}


# ------------------------------------------------------------------------------------- registry

SUITES: dict[str, SuiteDefinition] = {
    "raw.sales": SuiteDefinition("raw.sales", SALES_COLUMNS, build_sales_suite, SALES_PARAMETERS,
                                 SALES_DERIVED, reference_tables=("raw.stores",), key_columns=("Store", "Date")),
    "raw.stores": SuiteDefinition("raw.stores", STORES_COLUMNS, build_stores_suite, key_columns=("Store",)),
    "raw.plan": SuiteDefinition("raw.plan", PLAN_COLUMNS, build_plan_suite, PLAN_PARAMETERS,
                                PLAN_DERIVED, reference_tables=("raw.stores", "raw.sales"),
                                key_columns=("Store", "Date")),
    "marts.fct_store_daily_features": SuiteDefinition(
        "marts.fct_store_daily_features", FEATURE_COLUMNS, build_features_suite, FEATURES_PARAMETERS,
        FEATURE_DERIVED, key_columns=("store_id", "sale_date")),
}
