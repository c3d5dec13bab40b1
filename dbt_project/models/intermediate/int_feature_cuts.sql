{{ config(materialized='table') }}

-- The cuts at which the models take their per-cut store features: the first day after the
-- training data of each rolling-origin backtest fold and of the production forecast, and every
-- horizon before them. Cut k (k = 0, 1, ..) is last history date + 1 - k * backtest_horizon_days:
-- k = 0 trains on all history (the forecast), k = 1 is the validation fold (the last
-- backtest_horizon_days of history), k = 2 .. backtest_folds the earlier backtests, and the cuts
-- beyond them ('training_block') split the older history into horizon-long blocks, each of
-- which gets the recent-sales features of its own cut (agg_store_recent_sales), as if it had
-- been forecast from there. agg_store_sales_stats uses the fold cuts only. Same layout as
-- forecasting.folds.make_folds with the same defaults; a cut with no history before it is
-- dropped.

with

history_span as (

    select
        min(sale_date) as first_history_date,
        max(sale_date) as last_history_date
    from {{ ref('stg_rossmann__sales') }}

),

fold_numbers as (

    -- every k whose cut can still have history before it
    select
        unnest(range(
            0,
            (last_history_date - first_history_date) // {{ var('backtest_horizon_days') }} + 2
        )) as k
    from history_span
    where last_history_date is not null

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
    cross join fold_numbers

)

select
    folds_before_end,
    feature_cut_date,
    case
        when folds_before_end = 0 then 'forecast'
        when folds_before_end = 1 then 'validation'
        when folds_before_end <= {{ var('backtest_folds') }} then 'backtest'
        else 'training_block'
    end as cut_kind

from cuts
where feature_cut_date > first_history_date
