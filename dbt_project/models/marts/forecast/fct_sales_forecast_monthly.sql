-- Monthly roll-up of fct_sales_forecast per store, month, model and model version (what the API's
-- monthly endpoint and the dashboard's monthly chart read).

with

forecasts as (

    select * from {{ ref('fct_sales_forecast') }}

),

aggregated as (

    select
        store_id,
        cast(date_trunc('month', forecast_date) as date) as month_start,
        model,
        model_version,
        bool_or(is_latest_version) as is_latest_version,
        sum(sales_pred) as sales_pred,
        sum(sales_lower) as sales_lower,
        sum(sales_upper) as sales_upper,
        sum(customers_pred) as customers_pred,
        cast(count(*) as integer) as n_days,
        -- open per the calendar; a day outside it counts as open when something is forecast
        cast(count(*) filter (where coalesce(is_open, sales_pred > 0)) as integer) as n_open_days,
        sum(actual_sales) as actual_sales,
        sum(actual_customers) as actual_customers,
        cast(count(*) filter (where has_actuals) as integer) as n_days_with_actuals,
        sum(sales_pred) filter (where has_actuals) as sales_pred_on_actual_days,
        sum(customers_pred) filter (where has_actuals) as customers_pred_on_actual_days

    from forecasts
    group by store_id, month_start, model, model_version

),

final as (

    select
        store_id,
        month_start,
        model,
        model_version,
        sales_pred,
        sales_lower,
        sales_upper,
        customers_pred,
        n_days,
        actual_sales,
        actual_customers,
        n_days_with_actuals,
        is_latest_version,
        -- additions
        sales_pred_on_actual_days,
        sales_pred_on_actual_days - actual_sales as sales_error_on_actual_days,
        -- (additions) accuracy where actuals exist, over the forecast days that have them
        n_days_with_actuals = n_days as has_complete_actuals,
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
order by model, model_version, store_id, month_start
