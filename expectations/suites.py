"""Great Expectations suites as code, one :class:`SuiteDefinition` per incoming raw table.

GX owns the rules on the incoming files (``raw.sales``, ``raw.stores``, ``raw.plan``); the rules on what dbt builds
are dbt tests. Column sets, types and Kaggle's code lists come from :mod:`ingestion.raw_layout`.

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

from ingestion.raw_layout import ASSORTMENTS, PROMO_INTERVALS, RAW_COLUMNS, RAW_SCHEMA, STATE_HOLIDAYS, STORE_TYPES

from . import guards
from .outcome import SEVERITY_ERROR, SEVERITY_WARN

FLAG = [0, 1]
# stand-in for "no history": makes the plan-after-history check vacuous
NO_DATE = datetime.datetime(1900, 1, 1)

# DuckDB type of the raw layout -> pandas dtype as judged by expect_column_values_to_be_of_type on the DataFrame
# fetched with DuckDB's .df() (dates are normalised to datetime64[ns] by the runner).
PANDAS_TYPES: dict[str, str] = {"INTEGER": "int32", "DOUBLE": "float64", "DATE": "datetime64", "VARCHAR": "str"}


@dataclass(frozen=True)
class SuiteDefinition:
    """How to validate one table.

    table: ``schema.table`` in the warehouse (also the suite and data asset name).
    columns: the raw layout's columns -> DuckDB type.
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


def _schema_expectations(columns: dict[str, str], derived: dict[str, Any]) -> list[gxe.Expectation]:
    """Exact column set (incl. helper columns) and per-column types."""
    return [
        error(gxe.ExpectTableColumnsToMatchSet, column_set=[*columns, *derived], exact_match=True),
        *[error(gxe.ExpectColumnValuesToBeOfType, column=col, type_=PANDAS_TYPES[duck_type])
          for col, duck_type in columns.items()],
    ]


def _not_null(cols: list[str]) -> list[gxe.Expectation]:
    return [error(gxe.ExpectColumnValuesToNotBeNull, column=c) for c in cols]


def _in_set(col: str, values: Any, **kw: Any) -> gxe.Expectation:
    """A blocking value-set check; ``values`` is a sequence or a suite parameter."""
    value_set = values if isinstance(values, dict) else list(values)
    return error(gxe.ExpectColumnValuesToBeInSet, column=col, value_set=value_set, **kw)


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

SALES_COLUMNS = RAW_COLUMNS["sales"]
SALES_DERIVED = {"_isodow_of_Date": _isodow("Date"), **guards.SALES_DERIVED}


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
        # Blocking like the Sales rule above: a closed day with customers means Open or Customers is wrong (this
        # rule is written only here; dbt's staging model does not repeat it).
        _in_set("Customers", [0], row_condition=Column("Open") == 0,
                notes="No customers on closed days: rows with Open=0 must have Customers=0."),
        warn(gxe.ExpectColumnValuesToBeBetween, column="Sales", min_value=1, mostly=0.999,
             row_condition=Column("Open") == 1,
             notes="A few open days with Sales=0 are a known Kaggle quirk; many would be suspicious."),
        warn(gxe.ExpectColumnPairValuesToBeEqual, column_A="DayOfWeek", column_B="_isodow_of_Date",
             notes="DayOfWeek must equal ISO day of week of Date (1=Mon..7=Sun)."),
        *guards.sales_guards(),
    ]


def known_stores(con: duckdb.DuckDBPyConnection) -> list[int]:
    return _values(con, 'SELECT DISTINCT "Store" FROM raw.stores WHERE "Store" IS NOT NULL ORDER BY 1')


def history_stores(con: duckdb.DuckDBPyConnection) -> list[int]:
    return _values(con, 'SELECT DISTINCT "Store" FROM raw.sales WHERE "Store" IS NOT NULL ORDER BY 1')


def last_sales_date(con: duckdb.DuckDBPyConnection) -> datetime.datetime:
    return _as_datetime(_scalar(con, 'SELECT max("Date") FROM raw.sales'))


SALES_PARAMETERS = {"known_stores": known_stores, **guards.SALES_PARAMETERS}


# ----------------------------------------------------------------------------------- raw.stores

STORES_COLUMNS = RAW_COLUMNS["stores"]


def build_stores_suite() -> list[gxe.Expectation]:
    promo2_off = Column("Promo2") == 0
    promo2_on = Column("Promo2") == 1
    return [
        *_schema_expectations(STORES_COLUMNS, {}),
        error(gxe.ExpectTableRowCountToBeBetween, min_value=1),
        *_not_null(["Store", "StoreType", "Assortment", "Promo2"]),
        error(gxe.ExpectColumnValuesToBeUnique, column="Store"),
        # A store id below 1 would pass every rule naming known stores, then fail dbt's tests after training.
        error(gxe.ExpectColumnValuesToBeBetween, column="Store", min_value=1, notes="Store ids are 1 or more."),
        _in_set("StoreType", STORE_TYPES),
        _in_set("Assortment", ASSORTMENTS),
        guards.competition_distance_guard(),
        _in_set("CompetitionOpenSinceMonth", _rng(1, 12)),
        _in_set("Promo2", FLAG),
        _in_set("Promo2SinceWeek", _rng(1, 53)),
        _in_set("PromoInterval", PROMO_INTERVALS, notes="Nulls allowed (stores without Promo2)."),
        *guards.store_year_guards(),
        warn(gxe.ExpectColumnValuesToBeNull, column="PromoInterval", row_condition=promo2_off,
             notes="Stores without Promo2 should have no PromoInterval."),
        *[warn(gxe.ExpectColumnValuesToNotBeNull, column=c, row_condition=promo2_on,
               notes="Stores in Promo2 need its start week/year and interval.")
          for c in ("Promo2SinceWeek", "Promo2SinceYear", "PromoInterval")],
    ]


# ------------------------------------------------------------------------------------- raw.plan

PLAN_COLUMNS = RAW_COLUMNS["plan"]
PLAN_DERIVED = {"_isodow_of_Date": _isodow("Date"), **guards.PLAN_DERIVED}


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
              strict_min=True, **guards.plan_window_bound(),
              notes="Plan dates after the last raw.sales date, up to horizon_days (42) after it."),
        *guards.plan_guards(),
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
    **guards.PLAN_PARAMETERS,
}


# ------------------------------------------------------------------------------------- registry

SALES, STORES, PLAN = (f"{RAW_SCHEMA}.{table}" for table in ("sales", "stores", "plan"))
SUITES: dict[str, SuiteDefinition] = {
    SALES: SuiteDefinition(SALES, SALES_COLUMNS, build_sales_suite, SALES_PARAMETERS, SALES_DERIVED,
                           # Sales and Customers too: every failure's sample rows then show the values
                           reference_tables=(STORES,), key_columns=("Store", "Date", "Sales", "Customers")),
    STORES: SuiteDefinition(STORES, STORES_COLUMNS, build_stores_suite, guards.STORES_PARAMETERS,
                            key_columns=("Store",)),
    PLAN: SuiteDefinition(PLAN, PLAN_COLUMNS, build_plan_suite, PLAN_PARAMETERS, PLAN_DERIVED,
                          reference_tables=(STORES, SALES), key_columns=("Store", "Date")),
}
