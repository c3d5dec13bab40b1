-- Per store and model, day by day: the rolling 28-day realised RMSPE and bias of the latest
-- forecasts that have actuals. For each store-day the latest forecast is the one of the model's
-- most recently trained version that forecast it, at that version's latest origin for the day
-- (fct_forecast_vs_actual keeps every origin); the window holds the 28 calendar days ending on
-- the row's day.

with

forecasts as (

    select * from {{ ref('fct_forecast_vs_actual') }}

),

model_versions as (

    select * from {{ ref('dim_model_versions') }}

),

latest_forecasts as (

    select
        forecasts.store_id,
        forecasts.forecast_date,
        forecasts.model,
        forecasts.model_version,
        forecasts.origin_date,
        forecasts.abs_pct_error,
        case
            when forecasts.abs_pct_error is not null and forecasts.sales_pred > 0
                then ln(forecasts.sales_pred / forecasts.actual_sales)
        end as log_ratio

    from forecasts
    inner join model_versions
        on forecasts.model = model_versions.model
        and forecasts.model_version = model_versions.model_version
    where forecasts.has_actuals
    qualify row_number() over (
        partition by forecasts.model, forecasts.store_id, forecasts.forecast_date
        order by model_versions.trained_at desc, forecasts.model_version desc, forecasts.origin_date desc
    ) = 1

),

rolling as (

    select
        *,
        count(abs_pct_error) over last_28_days as n_scored_days_28d,
        sum(abs_pct_error * abs_pct_error) over last_28_days as sum_sq_pct_error_28d,
        avg(log_ratio) over last_28_days as bias_28d

    from latest_forecasts
    window last_28_days as (
        partition by model, store_id
        order by forecast_date
        range between interval 27 days preceding and current row
    )

),

final as (

    select
        store_id,
        model,
        forecast_date,
        model_version,
        origin_date,
        cast(n_scored_days_28d as integer) as n_scored_days_28d,
        sqrt(sum_sq_pct_error_28d / nullif(n_scored_days_28d, 0)) as rmspe_28d,
        bias_28d,
        forecast_date = max(forecast_date) over (partition by model, store_id) as is_last_realised_day

    from rolling

)

select * from final
order by model, store_id, forecast_date
