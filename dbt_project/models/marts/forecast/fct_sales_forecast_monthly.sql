-- Monthly roll-up per store, month, model, model version and forecast: every origin of the
-- written forecasts (fct_forecast_vs_actual; forecast_source 'forecast', is_served on each
-- version's latest origin: what the API's monthly endpoint and the dashboard's monthly chart
-- read) and every backtest fold (fct_backtest_forecast; forecast_source 'backtest'), with the
-- accuracy wherever actuals exist.

with

forecasts as (

    select * from {{ ref('fct_forecast_vs_actual') }}

),

backtest as (

    select * from {{ ref('fct_backtest_forecast') }}

),

model_versions as (

    select * from {{ ref('dim_model_versions') }}

),

forecast_days as (

    select
        forecasts.store_id,
        forecasts.forecast_date,
        forecasts.model,
        forecasts.model_version,
        'forecast' as forecast_source,
        cast(null as varchar) as split,
        forecasts.origin_date,
        forecasts.origin_date = model_versions.latest_origin_date as is_served,
        model_versions.is_latest as is_latest_version,
        forecasts.sales_pred,
        forecasts.sales_lower,
        forecasts.sales_upper,
        forecasts.customers_pred,
        forecasts.is_open,
        forecasts.has_actuals,
        forecasts.actual_sales,
        forecasts.actual_customers

    from forecasts
    inner join model_versions
        on forecasts.model = model_versions.model
        and forecasts.model_version = model_versions.model_version

),

backtest_days as (

    select
        store_id,
        forecast_date,
        model,
        model_version,
        'backtest' as forecast_source,
        split,
        origin_date,
        false as is_served,
        is_latest_version,
        sales_pred,
        sales_lower,
        sales_upper,
        customers_pred,
        is_open,
        actual_sales is not null as has_actuals,
        actual_sales,
        actual_customers

    from backtest

),

days as (

    select * from forecast_days
    union all by name
    select * from backtest_days

),

aggregated as (

    select
        store_id,
        cast(date_trunc('month', forecast_date) as date) as month_start,
        model,
        model_version,
        forecast_source,
        origin_date,
        any_value(split) as split,
        bool_or(is_served) as is_served,
        bool_or(is_latest_version) as is_latest_version,
        sum(sales_pred) as sales_pred,
        sum(sales_lower) as sales_lower,
        sum(sales_upper) as sales_upper,
        sum(customers_pred) as customers_pred,
        cast(count(*) as integer) as n_days,
        -- open per the calendar; a day outside it counts as open when something is forecast
        cast(count(*) filter (where coalesce(is_open, sales_pred > 0)) as integer) as n_open_days,
        sum(actual_sales) filter (where has_actuals) as actual_sales,
        sum(actual_customers) filter (where has_actuals) as actual_customers,
        cast(count(*) filter (where has_actuals) as integer) as n_days_with_actuals,
        sum(sales_pred) filter (where has_actuals) as sales_pred_on_actual_days,
        sum(customers_pred) filter (where has_actuals) as customers_pred_on_actual_days

    from days
    group by store_id, month_start, model, model_version, forecast_source, origin_date

),

final as (

    select
        store_id,
        month_start,
        model,
        model_version,
        forecast_source,
        origin_date,
        split,
        is_served,
        sales_pred,
        sales_lower,
        sales_upper,
        customers_pred,
        n_days,
        actual_sales,
        actual_customers,
        n_days_with_actuals,
        is_latest_version,
        sales_pred_on_actual_days,
        sales_pred_on_actual_days - actual_sales as sales_error_on_actual_days,
        n_days_with_actuals = n_days as has_complete_actuals,
        -- accuracy over the forecast days of the month that have actuals
        100 * (1 - abs(sales_pred_on_actual_days - actual_sales) / nullif(actual_sales, 0))
            as sales_accuracy_pct,
        customers_pred_on_actual_days,
        customers_pred_on_actual_days - actual_customers as customers_error_on_actual_days,
        100 * (1 - abs(customers_pred_on_actual_days - actual_customers) / nullif(actual_customers, 0))
            as customers_accuracy_pct,
        n_open_days

    from aggregated

)

select * from final
order by model, model_version, forecast_source, origin_date, store_id, month_start
