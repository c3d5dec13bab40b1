-- Past forecasts against what happened: every model version's backtest fold rows
-- (ml.backtest_forecast) with the error, whether the actual fell inside the interval, and the
-- version flags of dim_model_versions (the one definition of latest and champion).

with

backtest as (

    select * from {{ source('ml', 'backtest_forecast') }}

),

model_versions as (

    select * from {{ ref('dim_model_versions') }}

),

final as (

    select
        backtest.model,
        backtest.model_version,
        backtest.split,
        backtest.store_id,
        backtest.forecast_date,
        -- the fold's first day (horizon_day 1), the backtest counterpart of a forecast's origin_date
        cast(backtest.forecast_date - (backtest.horizon_day - 1) as date) as origin_date,
        cast(backtest.horizon_day as integer) as horizon_day,
        backtest.is_open,
        coalesce(model_versions.is_latest, false) as is_latest_version,
        coalesce(model_versions.is_champion, false) as is_champion,
        model_versions.interval_level,

        ---------- forecast and actuals
        cast(backtest.sales_pred as double) as sales_pred,
        cast(backtest.sales_lower as double) as sales_lower,
        cast(backtest.sales_upper as double) as sales_upper,
        cast(backtest.customers_pred as double) as customers_pred,
        cast(backtest.actual_sales as double) as actual_sales,
        cast(backtest.actual_customers as double) as actual_customers,

        ---------- error
        backtest.sales_pred - backtest.actual_sales as sales_error,
        -- the Kaggle RMSPE term: open days with positive actual sales only
        case
            when coalesce(backtest.is_open, true) and backtest.actual_sales > 0
                then abs(backtest.sales_pred - backtest.actual_sales) / backtest.actual_sales
        end as sales_abs_pct_error,
        backtest.actual_sales between backtest.sales_lower and backtest.sales_upper as is_in_interval

    from backtest
    left join model_versions
        on backtest.model = model_versions.model
        and backtest.model_version = model_versions.model_version

)

select * from final
order by model, model_version, split, store_id, forecast_date
