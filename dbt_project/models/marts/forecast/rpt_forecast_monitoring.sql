-- Realised forecast quality per model version and ISO week of forecast_date, from every origin's
-- forecasts of fct_forecast_vs_actual that have actuals, beside the version's backtest RMSPE: is
-- a version doing in production what its backtests promised? Scored days are open days with
-- sales > 0 (the RMSPE of forecasting.metrics); a day forecast by several origins counts once per
-- origin.

with

forecasts as (

    select * from {{ ref('fct_forecast_vs_actual') }}

),

model_versions as (

    select * from {{ ref('dim_model_versions') }}

),

scored as (

    select
        model,
        model_version,
        cast(date_trunc('week', forecast_date) as date) as week_start,
        origin_date,
        abs_pct_error,
        -- the signed log ratio: > 0 when the forecast is above the actual
        case when sales_pred > 0 then ln(sales_pred / actual_sales) end as log_ratio,
        in_interval

    from forecasts
    where abs_pct_error is not null

),

weekly as (

    select
        model,
        model_version,
        week_start,
        count(*) as n_scored_days,
        count(distinct origin_date) as n_origins,
        sqrt(avg(abs_pct_error * abs_pct_error)) as rmspe,
        avg(abs_pct_error) as mape,
        avg(log_ratio) as bias,
        avg(cast(in_interval as double)) as coverage

    from scored
    group by all

),

final as (

    select
        weekly.model,
        weekly.model_version,
        weekly.week_start,
        cast(isoyear(weekly.week_start) as integer) as iso_year,
        cast(weekofyear(weekly.week_start) as integer) as iso_week,
        cast(weekly.n_scored_days as integer) as n_scored_days,
        cast(weekly.n_origins as integer) as n_origins,
        weekly.rmspe,
        weekly.mape,
        weekly.bias,
        weekly.coverage,
        model_versions.interval_level,
        model_versions.mean_rmspe as backtest_rmspe,
        weekly.rmspe - model_versions.mean_rmspe as rmspe_vs_backtest,
        coalesce(model_versions.is_latest, false) as is_latest_version,
        coalesce(model_versions.is_champion, false) as is_champion

    from weekly
    left join model_versions
        on weekly.model = model_versions.model
        and weekly.model_version = model_versions.model_version

)

select * from final
order by model, model_version, week_start
