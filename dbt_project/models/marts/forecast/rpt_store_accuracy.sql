-- Accuracy per store beside the chain's: for every model version and backtest fold, the store's
-- Kaggle RMSPE (open days with sales > 0) and the same figure over all stores of the fold, with
-- the store's rank (1 = least accurate) and the version flags of dim_model_versions.

with

backtest as (

    select * from {{ ref('fct_backtest_forecast') }}

),

per_store as (

    select
        model,
        model_version,
        split,
        store_id,
        any_value(is_latest_version) as is_latest_version,
        any_value(is_champion) as is_champion,
        min(origin_date) as fold_start,
        max(forecast_date) as fold_end,
        count(sales_abs_pct_error) as n_scored_days,
        sum(sales_abs_pct_error * sales_abs_pct_error) as sum_sq_pct_error,
        sum(actual_sales) as actual_sales,
        sum(sales_pred) as sales_pred,
        avg(case when is_open and actual_sales > 0 then cast(is_in_interval as integer) end)
            as interval_coverage

    from backtest
    group by model, model_version, split, store_id

),

final as (

    select
        model,
        model_version,
        split,
        store_id,
        is_latest_version,
        is_champion,
        fold_start,
        fold_end,
        cast(n_scored_days as integer) as n_scored_days,
        sqrt(sum_sq_pct_error / nullif(n_scored_days, 0)) as store_rmspe,
        sqrt(
            sum(sum_sq_pct_error) over (partition by model, model_version, split)
            / nullif(sum(n_scored_days) over (partition by model, model_version, split), 0)
        ) as chain_rmspe,
        cast(rank() over (
            partition by model, model_version, split
            order by sqrt(sum_sq_pct_error / nullif(n_scored_days, 0)) desc nulls last
        ) as integer) as worst_rank,
        actual_sales,
        sales_pred,
        interval_coverage

    from per_store

)

select * from final
order by model, model_version, split, store_id
