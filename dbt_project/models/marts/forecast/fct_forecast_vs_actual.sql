-- Every forecast ever written (ml.store_sales_forecast: every model, version and origin) beside
-- what happened: the store-day's actuals as they arrive (history), else its plan calendar.
-- A view, so it is always current with the latest actuals without rebuilding the forecast marts
-- (the retraining policy reads realised RMSPE from it at the start of a run); the published copy
-- materialises it.

{{ config(materialized='view') }}

with

forecasts as (

    select * from {{ source('ml', 'store_sales_forecast') }}

),

store_days as (

    -- history (with actuals) and the plan, one row per store-day
    select * from {{ ref('int_store_days') }}

),

joined as (

    select
        forecasts.store_id,
        forecasts.forecast_date,
        forecasts.model,
        forecasts.model_version,
        forecasts.origin_date,
        cast(forecasts.forecast_date - forecasts.origin_date + 1 as integer) as horizon_day,
        cast(forecasts.sales_pred as double) as sales_pred,
        cast(forecasts.sales_lower as double) as sales_lower,
        cast(forecasts.sales_upper as double) as sales_upper,
        cast(forecasts.customers_pred as double) as customers_pred,
        coalesce(store_days.is_history, false) as has_actuals,
        case when store_days.is_history then store_days.sales end as actual_sales,
        case when store_days.is_history then store_days.customers end as actual_customers,
        store_days.is_open,
        forecasts.created_at

    from forecasts
    left join store_days
        on forecasts.store_id = store_days.store_id
        and forecasts.forecast_date = store_days.sale_date

),

final as (

    select
        *,
        -- the Kaggle RMSPE term (forecasting.metrics): open days with positive actual sales only
        case
            when has_actuals and is_open and actual_sales > 0
                then abs(actual_sales - sales_pred) / actual_sales
        end as abs_pct_error,
        case
            when has_actuals then actual_sales between sales_lower and sales_upper
        end as in_interval

    from joined

)

select * from final
