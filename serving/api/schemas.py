"""The API's request and response models (pydantic) and the limits on what a request may ask for."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any, Literal

from fastapi import Body, Query
from pydantic import (AfterValidator, AliasChoices, BaseModel, BeforeValidator, ConfigDict, Field, field_validator,
                      model_validator)

from serving.api.model_artifact import LIVE_MODELS

VERSION_PATTERN = r"^[A-Za-z0-9_.:+\-]{1,64}$"
def interval_note(level: float | None) -> str:
    """What sales_lower / sales_upper are, at the version's interval level (marts.dim_model_versions)."""
    return f"sales_lower/sales_upper: the model's {level:.0%} prediction interval" if level else \
        "sales_lower/sales_upper: the model's prediction interval"

# Model names come from the data (baseline, random_forest, lstm, ... whatever the pipeline trains): a
# well-formed name that has no forecasts is a 404 listing the ones that do.
MODEL_PATTERN = r"^[a-z][a-z0-9_]{0,63}$"
ModelParam = Annotated[str | None, Query(pattern=MODEL_PATTERN,
                                         description="A model name, e.g. random_forest. Default: the champion.")]
VersionParam = Annotated[str | None, Query(pattern=VERSION_PATTERN)]
PredictModelParam = Annotated[str | None, Query(
    pattern=MODEL_PATTERN, description=f"The model to predict with (any model the pipeline trains: "
                                       f"{', '.join(LIVE_MODELS)}). Default: the champion, whichever model it is.")]


def _utc(value: dt.datetime) -> dt.datetime:
    """Naive timestamps from the warehouse are UTC: say so (ISO 8601 with ``+00:00``)."""
    return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


UtcDateTime = Annotated[dt.datetime, AfterValidator(_utc)]

_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


def _iso_date_only(value: Any) -> Any:
    """Query dates are YYYY-MM-DD text only: pydantic would read ``0`` as 1970-01-01 (Unix seconds)."""
    if isinstance(value, str) and not _ISO_DATE.fullmatch(value):
        raise ValueError("must be a date as YYYY-MM-DD")
    if not isinstance(value, (str, dt.date)) or isinstance(value, dt.datetime):
        raise ValueError("must be a date as YYYY-MM-DD")
    return value


IsoDate = Annotated[dt.date, BeforeValidator(_iso_date_only)]


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    published_version: str
    published_at: UtcDateTime
    source_run: str | None
    connection_mode: str


class Store(BaseModel):
    """A row of marts.dim_stores (every column of it; the main ones are listed)."""

    model_config = ConfigDict(extra="allow")
    store_id: int
    store_type: str | None = None
    assortment: str | None = None
    competition_distance_m: float | None = None
    is_in_promo2: bool | None = None
    promo_interval: str | None = None
    first_history_date: dt.date | None = None
    last_history_date: dt.date | None = None


class ForecastDay(BaseModel):
    date: dt.date
    sales_pred: float
    sales_lower: float
    sales_upper: float
    customers_pred: float | None
    is_open: bool | None = Field(description="From the plan calendar (None when the store-day is not in it).")
    is_promo: bool | None
    sales_actual: float | None = Field(description="Actual sales when the day is in the history, else None.")


class Forecast(BaseModel):
    store_id: int
    model: str
    model_version: str
    is_champion: bool
    published_version: str
    start: dt.date | None
    end: dt.date | None
    interval: str = Field(description="What sales_lower / sales_upper are, with the interval's level.")
    rows: list[ForecastDay]


class ForecastMonth(BaseModel):
    month_start: dt.date
    n_days: int
    n_open_days: int
    sales_pred: float
    sales_lower: float = Field(description="Sum of the daily lower bounds.")
    sales_upper: float = Field(description="Sum of the daily upper bounds.")
    customers_pred: float | None
    sales_actual: float | None
    n_actual_days: int


class MonthlyForecast(BaseModel):
    store_id: int
    model: str
    model_version: str
    is_champion: bool
    published_version: str
    rows: list[ForecastMonth]


class ModelVersion(BaseModel):
    model: str
    model_version: str
    trained_at: UtcDateTime
    train_start: dt.date
    train_end: dt.date
    n_train_rows: int
    params: Any
    artifact_path: str
    is_latest: bool
    is_champion: bool
    has_forecasts: bool
    metrics: dict[str, dict[str, float | None]] = Field(description="split -> metric -> value")


class Models(BaseModel):
    published_version: str
    champion: dict[str, Any] | None
    models: list[ModelVersion]


def _state_holiday(value: Any) -> Any:
    if isinstance(value, bool):
        raise ValueError("state_holiday must be '0', 'a', 'b' or 'c'")
    if isinstance(value, int) and value == 0:
        return "0"
    return value


class PredictRow(BaseModel):
    """One store-day. Kaggle's column names (Store, Date, Open, Promo, StateHoliday, SchoolHoliday,
    DayOfWeek) are accepted too."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [
        {"store": 1, "date": "2015-08-03", "open": True, "promo": True, "state_holiday": "0",
         "school_holiday": False}]})
    store: int = Field(ge=1, le=2_147_483_647, validation_alias=AliasChoices("store", "Store", "store_id"))
    date: dt.date = Field(validation_alias=AliasChoices("date", "Date", "sale_date"))
    open: bool | None = Field(default=True, validation_alias=AliasChoices("open", "Open", "is_open"),
                              description="Null counts as open (as in Kaggle's test.csv).")
    promo: bool = Field(default=False, validation_alias=AliasChoices("promo", "Promo", "is_promo"))
    state_holiday: Literal["0", "a", "b", "c"] = Field(
        default="0", validation_alias=AliasChoices("state_holiday", "StateHoliday"))
    school_holiday: bool = Field(default=False, validation_alias=AliasChoices(
        "school_holiday", "SchoolHoliday", "is_school_holiday"))
    day_of_week: int | None = Field(default=None, ge=1, le=7, validation_alias=AliasChoices(
        "day_of_week", "DayOfWeek"), description="Optional; checked against date (1 = Monday).")

    _coerce_holiday = field_validator("state_holiday", mode="before")(_state_holiday)

    @field_validator("date")
    @classmethod
    def _plausible_date(cls, value: dt.date) -> dt.date:
        if not dt.date(1990, 1, 1) <= value <= dt.date(2100, 12, 31):
            raise ValueError("date must be between 1990-01-01 and 2100-12-31")
        return value

    @model_validator(mode="after")
    def _day_of_week_matches(self) -> PredictRow:
        if self.day_of_week is not None and self.day_of_week != self.date.isoweekday():
            raise ValueError(f"day_of_week {self.day_of_week} does not match date {self.date} "
                             f"(ISO day of week {self.date.isoweekday()}, 1 = Monday)")
        return self


PredictBody = Annotated[
    # The row cap is a setting (API_PREDICT_MAX_ROWS), checked by the route: 413 naming the limit.
    Annotated[list[PredictRow], Field(min_length=1)] | PredictRow,
    Body(openapi_examples={
        "one": {"summary": "one store-day", "value": {"store": 1, "date": "2015-08-03", "open": True,
                                                       "promo": True, "state_holiday": "0",
                                                       "school_holiday": False}},
        "many": {"summary": "several store-days", "value": [
            {"store": 1, "date": "2015-08-03", "promo": True},
            {"store": 2, "date": "2015-08-04", "open": False}]},
    }),
]


class Prediction(BaseModel):
    store: int
    date: dt.date
    open: bool
    sales_pred: float
    sales_lower: float
    sales_upper: float
    customers_pred: float
    warning: str | None = Field(description="Set when the date is far outside the training data and horizon.")


class Predictions(BaseModel):
    model: str
    model_version: str
    is_champion: bool
    champion: str | None = Field(description="The champion model of marts.dim_model_versions.")
    published_version: str
    interval: str = Field(description="What sales_lower / sales_upper are, with the interval's level.")
    predictions: list[Prediction]
