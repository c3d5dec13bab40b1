"""Guards against absurd values in the incoming files: blocking expectations with user-set thresholds.

The thresholds are suite parameters (``guard_*``), so the stored suites stay stable and a run passes its own values
(``validate_incoming(..., thresholds=...)``; the platform takes them from :class:`settings.Settings`). What a rule
compares is a helper column computed in DuckDB (``_..._vs_store``, ``_Sales_per_Customer``, ``_plan_day``,
``_days_since_previous``): vectorised, and its sample rows show the offending value.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from typing import Any, Callable

import duckdb
import great_expectations.expectations as gxe

# The store's typical busy open day: its 90th percentile. The 99th would let a store's outliers hide themselves as
# soon as they are more than 1% of its days (20 spoiled rows of a 5-store year already are).
STORE_QUANTILE = 0.9
DEFAULT_HORIZON_DAYS = 42  # TrainingSettings.horizon_days owns it; the raw asset passes the run's value


@dataclass(frozen=True)
class GuardThresholds:
    """The user-configurable limits (``GUARD_*`` environment variables, see settings.py)."""

    store_max_multiple: float = 10.0
    sales_per_customer_min: float = 1.0
    sales_per_customer_max: float = 200.0
    max_competition_distance_m: float = 100_000.0
    horizon_days: int = DEFAULT_HORIZON_DAYS

    @classmethod
    def from_settings(cls, settings: Any, horizon_days: int = DEFAULT_HORIZON_DAYS) -> GuardThresholds:
        return cls(store_max_multiple=settings.guard_store_max_multiple,
                   sales_per_customer_min=settings.guard_sales_per_customer_min,
                   sales_per_customer_max=settings.guard_sales_per_customer_max,
                   max_competition_distance_m=settings.guard_max_competition_distance_m,
                   horizon_days=horizon_days)

    def parameter_functions(self) -> dict[str, Callable[[duckdb.DuckDBPyConnection], Any]]:
        """Suite parameter name -> function of the validated warehouse (the runner computes them per validation)."""
        last_history = suites_last_history_date
        return {
            "guard_store_max_multiple": lambda con: self.store_max_multiple,
            "guard_sales_per_customer_min": lambda con: self.sales_per_customer_min,
            "guard_sales_per_customer_max": lambda con: self.sales_per_customer_max,
            "guard_max_competition_distance_m": lambda con: self.max_competition_distance_m,
            "current_year": lambda con: datetime.date.today().year,
            "first_plan_date": lambda con: last_history(con) + datetime.timedelta(days=1),
            "last_plan_date": lambda con: last_history(con) + datetime.timedelta(days=self.horizon_days),
        }


def suites_last_history_date(con: duckdb.DuckDBPyConnection) -> datetime.datetime:
    from .suites import last_sales_date  # suites imports this module

    return last_sales_date(con)


def default_parameters(*names: str) -> dict[str, Callable[[duckdb.DuckDBPyConnection], Any]]:
    """The default thresholds' functions for ``names`` (a run's own :class:`GuardThresholds` override them)."""
    functions = GuardThresholds().parameter_functions()
    return {name: functions[name] for name in names}


def _p(name: str) -> dict[str, str]:
    return {"$PARAMETER": name}


def _error(cls: type[gxe.Expectation], notes: str, **kwargs: Any) -> gxe.Expectation:
    from .suites import error  # suites imports this module

    return error(cls, notes=notes, **kwargs)


# ------------------------------------------------------------------------------------ raw.sales


def _vs_store(col: str) -> tuple[str, tuple[str, ...]]:
    """The value as a multiple of its store's 90th percentile of open days with a positive value (NULL else)."""
    typical = (f'quantile_cont("{col}", {STORE_QUANTILE}) FILTER (WHERE "Open" = 1 AND "{col}" > 0) '
               f'OVER (PARTITION BY "Store")')
    return (f'CAST("{col}" AS DOUBLE) / nullif({typical}, 0)', (col, "Open", "Store"))


SALES_DERIVED = {
    "_Sales_vs_store": _vs_store("Sales"),
    "_Customers_vs_store": _vs_store("Customers"),
    "_Sales_per_Customer": ('CASE WHEN "Open" = 1 AND "Sales" > 0 AND "Customers" > 0 '
                            'THEN CAST("Sales" AS DOUBLE) / "Customers" END', ("Sales", "Customers", "Open")),
}
SALES_PARAMETERS = default_parameters("guard_store_max_multiple", "guard_sales_per_customer_min",
                                      "guard_sales_per_customer_max")


def sales_guards() -> list[gxe.Expectation]:
    return [
        *[_error(gxe.ExpectColumnValuesToBeBetween, column=f"_{col}_vs_store", max_value=_p("guard_store_max_multiple"),
                 notes=f"{col} at most GUARD_STORE_MAX_MULTIPLE x its store's {STORE_QUANTILE:.0%} percentile of "
                       f"open days in raw.sales, all sales files merged (the helper column holds the multiple).")
          for col in ("Sales", "Customers")],
        _error(gxe.ExpectColumnValuesToBeBetween, column="_Sales_per_Customer",
               min_value=_p("guard_sales_per_customer_min"), max_value=_p("guard_sales_per_customer_max"),
               notes="Sales per customer on open days within GUARD_SALES_PER_CUSTOMER_MIN..MAX."),
    ]


# ----------------------------------------------------------------------------------- raw.stores

STORES_PARAMETERS = default_parameters("guard_max_competition_distance_m", "current_year")


def competition_distance_guard() -> gxe.Expectation:
    return _error(gxe.ExpectColumnValuesToBeBetween, column="CompetitionDistance", min_value=0,
                  max_value=_p("guard_max_competition_distance_m"),
                  notes="Metres, 0..GUARD_MAX_COMPETITION_DISTANCE_M (default 100 km).")


def store_year_guards() -> list[gxe.Expectation]:
    return [_error(gxe.ExpectColumnValuesToBeBetween, column=col, min_value=1900, max_value=_p("current_year"),
                   notes="A year from 1900 to the current year.")
            for col in ("CompetitionOpenSinceYear", "Promo2SinceYear")]


# ------------------------------------------------------------------------------------- raw.plan

_PREVIOUS_DAY = 'lag("Date") OVER (PARTITION BY "Store" ORDER BY "Date")'
PLAN_DERIVED = {
    "_days_since_previous": (f'CAST("Date" - {_PREVIOUS_DAY} AS DOUBLE)', ("Date", "Store")),
    "_first_day_of_store": (f'CASE WHEN {_PREVIOUS_DAY} IS NULL THEN "Date" END', ("Date", "Store")),
}
PLAN_PARAMETERS = default_parameters("first_plan_date", "last_plan_date")


def plan_window_bound() -> dict[str, Any]:
    """The upper bound of the plan's Date rule (its lower bound, after the history, is in suites.py)."""
    return {"max_value": _p("last_plan_date")}


def plan_guards() -> list[gxe.Expectation]:
    return [
        _error(gxe.ExpectColumnValuesToBeBetween, column="_first_day_of_store", min_value=_p("first_plan_date"),
               max_value=_p("first_plan_date"),
               notes="Each store's plan starts the day after the last raw.sales date (plan days on or before it "
                     "were dropped as already history)."),
        _error(gxe.ExpectColumnValuesToBeInSet, column="_days_since_previous", value_set=[1],
               notes="A store's plan has no gaps (the helper column holds the days since its previous plan day)."),
    ]
