"""``GET /stores/{store_id}/forecast`` (daily, marts.fct_sales_forecast) and ``.../forecast/monthly``
(marts.fct_sales_forecast_monthly) of one model version: by default the champion of marts.dim_model_versions."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import Response

from serving.api.dependencies import Dates, Reader, fast_json, require_store, resolve_model, versions
from serving.api.routers.stores import StoreId
from serving.api.schemas import Forecast, ModelParam, MonthlyForecast, VersionParam, interval_note
from serving.queries import rows

router = APIRouter(tags=["forecasts"])

NOT_FOUND = {404: {"description": "Unknown store or model version"}}


@router.get("/stores/{store_id}/forecast", response_model=Forecast, summary="Daily forecast of one store",
            description="Daily rows with the prediction interval. Default model: the champion (among each model's "
                        "latest version, the lowest recency-weighted mean RMSPE over its validation and backtest folds: "
                        "marts.dim_model_versions, the model of ml.champion_forecast); `model` picks a model's "
                        "latest version, `model_version` a specific one.",
            responses=NOT_FOUND)
def forecast(reader: Reader, store_id: StoreId, dates: Dates, model: ModelParam = None,
             model_version: VersionParam = None) -> Response:
    with reader.session() as s:
        require_store(s, store_id)
        name, version, is_champion = resolve_model(s, model, model_version)
        found = rows(s.con, """
            SELECT forecast_date AS date, sales_pred, sales_lower, sales_upper, customers_pred, is_open, is_promo,
                   actual_sales AS sales_actual
            FROM marts.fct_sales_forecast
            WHERE store_id = $store AND model = $model AND model_version = $version
              AND ($start IS NULL OR forecast_date >= $start)
              AND ($end IS NULL OR forecast_date <= $end)
            ORDER BY forecast_date""",
            {"store": store_id, "model": name, "version": version, "start": dates.start, "end": dates.end})
        return fast_json({"store_id": store_id, "model": name, "model_version": version, "is_champion": is_champion,
                          "published_version": s.version_id, "start": dates.start, "end": dates.end,
                          "interval": interval_note(versions(s).by_version[version].get("interval_level")),
                          "rows": found})


@router.get("/stores/{store_id}/forecast/monthly", response_model=MonthlyForecast,
            summary="Monthly totals of one store's forecast",
            description="Rows of marts.fct_sales_forecast_monthly: whole calendar months, those that overlap "
                        "`start`..`end`. Model choice as for the daily forecast.",
            responses=NOT_FOUND)
def forecast_monthly(reader: Reader, store_id: StoreId, dates: Dates, model: ModelParam = None,
                     model_version: VersionParam = None) -> Response:
    with reader.session() as s:
        require_store(s, store_id)
        name, version, is_champion = resolve_model(s, model, model_version)
        found = rows(s.con, """
            SELECT month_start, n_days, n_open_days, sales_pred, sales_lower, sales_upper, customers_pred,
                   actual_sales AS sales_actual, n_days_with_actuals AS n_actual_days
            FROM marts.fct_sales_forecast_monthly
            WHERE store_id = $store AND model = $model AND model_version = $version AND is_served
              AND ($start IS NULL OR month_start >= date_trunc('month', CAST($start AS DATE)))
              AND ($end IS NULL OR month_start <= $end)
            ORDER BY month_start""",
            {"store": store_id, "model": name, "version": version, "start": dates.start, "end": dates.end})
        return fast_json({"store_id": store_id, "model": name, "model_version": version, "is_champion": is_champion,
                          "published_version": s.version_id, "rows": found})
