{{ config(materialized='table') }}

-- The cuts at which agg_store_sales_stats takes the models' store statistics: the first day
-- after the training data of each rolling-origin backtest fold and of the production forecast.
-- Cut k (k = 0 .. backtest_folds) is last history date + 1 - k * backtest_horizon_days:
-- k = 0 trains on all history (the forecast), k = 1 is the validation fold (the last
-- backtest_horizon_days of history), k >= 2 the earlier backtests. Same layout as
-- forecasting.backtest.make_folds with the same defaults; a cut with no history before it is
-- dropped.

with

history_span as (

    select
        min(sale_date) as first_history_date,
        max(sale_date) as last_history_date
    from {{ ref('stg_rossmann__sales') }}

),

cuts as (

    select
        cast(fold_numbers.k as integer) as folds_before_end,
        cast(
            history_span.last_history_date + 1
            - cast(fold_numbers.k * {{ var('backtest_horizon_days') }} as integer)
            as date
        ) as feature_cut_date,
        history_span.first_history_date
    from history_span
    cross join range(0, {{ var('backtest_folds') }} + 1) as fold_numbers (k)
    where history_span.last_history_date is not null

)

select
    folds_before_end,
    feature_cut_date,
    case folds_before_end
        when 0 then 'forecast'
        when 1 then 'validation'
        else 'backtest'
    end as cut_kind

from cuts
where feature_cut_date > first_history_date
