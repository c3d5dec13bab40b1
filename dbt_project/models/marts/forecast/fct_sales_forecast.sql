-- Forecasts written back by the models (ml.store_sales_forecast), one row per model version,
-- store and forecast day, joined with the store's attributes, that day's calendar from the
-- plan (or from history for back-test days) and, where history has the day, the actuals.

with

forecasts as (

    select * from {{ source('ml', 'store_sales_forecast') }}

),

registry as (

    select * from {{ source('ml', 'model_registry') }}

),

store_days as (

    select * from {{ ref('fct_store_daily_features') }}

),

stores as (

    select * from {{ ref('dim_stores') }}

),

forecast_versions as (

    select
        model,
        model_version,
        max(created_at) as forecast_created_at
    from forecasts
    group by all

),

registered_versions as (

    select
        model,
        model_version,
        max(trained_at) as trained_at
    from registry
    group by all

),

versions as (

    -- latest version per model among those with forecasts, by the registry's trained_at
    -- (versions missing from the registry fall back to when their forecasts were written)
    select
        forecast_versions.model,
        forecast_versions.model_version,
        registered_versions.trained_at,
        row_number() over (
            partition by forecast_versions.model
            order by
                coalesce(registered_versions.trained_at, forecast_versions.forecast_created_at)
                    desc nulls last,
                forecast_versions.model_version desc
        ) = 1 as is_latest_version

    from forecast_versions
    left join registered_versions
        on forecast_versions.model = registered_versions.model
        and forecast_versions.model_version = registered_versions.model_version

),

joined as (

    select
        forecasts.store_id,
        forecasts.forecast_date,
        forecasts.model,
        forecasts.model_version,
        versions.is_latest_version,
        versions.trained_at,
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
    inner join versions
        on forecasts.model = versions.model
        and forecasts.model_version = versions.model_version
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
