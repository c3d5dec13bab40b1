-- Are promotions distributed alike in the history and in the plan (the forecast horizon)?
-- Share of promo days per store type and weekday, history next to plan.

with

store_days as (

    select * from {{ ref('fct_store_daily_features') }}

),

by_period as (

    select
        store_type,
        day_of_week,
        is_history,
        cast(count(*) as integer) as n_store_days,
        cast(count(*) filter (where is_open) as integer) as n_open_days,
        cast(count(*) filter (where is_promo) as integer) as n_promo_days,
        cast(count(*) filter (where is_promo and is_open) as integer) as n_open_promo_days,
        string_agg(distinct row_source, ',' order by row_source) as row_sources

    from store_days
    group by all

),

history as (

    select * from by_period where is_history

),

plan as (

    select * from by_period where not is_history

),

grid as (

    select distinct store_type, day_of_week from by_period

),

final as (

    select
        grid.store_type,
        grid.day_of_week,
        ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][grid.day_of_week] as day_name,

        ---------- history
        coalesce(history.n_store_days, 0) as history_store_days,
        coalesce(history.n_promo_days, 0) as history_promo_days,
        history.n_promo_days / nullif(history.n_store_days, 0) as history_promo_share,
        history.n_open_promo_days / nullif(history.n_open_days, 0) as history_promo_share_open_days,

        ---------- plan (given, or the assumed calendar)
        coalesce(plan.n_store_days, 0) as plan_store_days,
        coalesce(plan.n_promo_days, 0) as plan_promo_days,
        plan.n_promo_days / nullif(plan.n_store_days, 0) as plan_promo_share,
        plan.n_open_promo_days / nullif(plan.n_open_days, 0) as plan_promo_share_open_days,
        plan.row_sources as plan_row_source,

        ---------- comparison
        100 * (
            plan.n_promo_days / nullif(plan.n_store_days, 0)
            - history.n_promo_days / nullif(history.n_store_days, 0)
        ) as promo_share_diff_pp

    from grid
    left join history
        on grid.store_type = history.store_type
        and grid.day_of_week = history.day_of_week
    left join plan
        on grid.store_type = plan.store_type
        and grid.day_of_week = plan.day_of_week

)

select * from final
order by store_type, day_of_week
