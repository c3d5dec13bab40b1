-- The served forecasts written back by the models (ml.store_sales_forecast at each version's latest
-- origin, dim_model_versions.latest_origin_date), one row per model version, store and forecast
-- day, joined with the store's attributes, that day's calendar from the plan (or from history for
-- back-test days) and, where history has the day, the actuals. Every origin, scored against the
-- actuals: fct_forecast_vs_actual.

with

forecasts as (

    select * from {{ source('ml', 'store_sales_forecast') }}

),

model_versions as (

    select * from {{ ref('dim_model_versions') }}

),

store_days as (

    select * from {{ ref('fct_store_daily_features') }}

),

stores as (

    select * from {{ ref('dim_stores') }}

),

joined as (

    select
        forecasts.store_id,
        forecasts.forecast_date,
        forecasts.model,
        forecasts.model_version,
        forecasts.origin_date,
        -- the one definition of a model's latest version
        model_versions.is_latest as is_latest_version,
        model_versions.trained_at,
        forecasts.created_at,

        ---------- prediction
        cast(forecasts.sales_pred as double) as sales_pred,
        cast(forecasts.sales_lower as double) as sales_lower,
        cast(forecasts.sales_upper as double) as sales_upper,
        cast(forecasts.customers_pred as double) as customers_pred,

        ---------- store
        stores.store_type,
        stores.assortment,
        stores.competition_distance_m,
        stores.is_in_promo2,

        ---------- that day's calendar (plan, or history on back-test days)
        store_days.is_open,
        store_days.is_promo,
        store_days.state_holiday,
        store_days.is_school_holiday,

        ---------- actuals, where history has the store-day
        coalesce(store_days.is_history, false) as has_actuals,
        case when store_days.is_history then store_days.sales end as actual_sales,
        case when store_days.is_history then store_days.customers end as actual_customers

    from forecasts
    -- the served forecast: the version's latest origin (a version missing from the registry, which
    -- the write-back refuses, has none)
    inner join model_versions
        on forecasts.model = model_versions.model
        and forecasts.model_version = model_versions.model_version
        and forecasts.origin_date = model_versions.latest_origin_date
    left join stores
        on forecasts.store_id = stores.store_id
    left join store_days
        on forecasts.store_id = store_days.store_id
        and forecasts.forecast_date = store_days.sale_date

),

final as (

    select
        *,
        sales_pred - actual_sales as sales_error,
        -- the Kaggle RMSPE term: only days with positive actual sales count
        case
            when actual_sales > 0 then abs(sales_pred - actual_sales) / actual_sales
        end as sales_abs_pct_error

    from joined

)

select * from final
order by model, model_version, store_id, forecast_date
