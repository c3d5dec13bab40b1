-- The plan for the forecast horizon, one row per store and planned day.
--
-- The horizon is the {{ var('assumed_horizon_days') }} days after the last history date (the loader drops plan days
-- that are already history; the Great Expectations suite makes the rest start the day after it, without gaps).
-- * raw.plan's rows (plan_source = 'plan'); a missing Open is treated as open.
-- * every horizon day the plan lacks gets the assumed calendar (plan_source = 'assumed_calendar'): the days after
--   a plan that ends early, for the plan's stores; the whole horizon for every store with history when raw.plan
--   is empty:
--     - open on the weekdays the store was open on in the majority of its observations in its
--       last {{ var('assumed_open_lookback_weeks') }} history weeks (ties and unseen weekdays -> closed),
--     - promo repeats the store's last {{ var('assumed_promo_pattern_days') }} history days
--       (horizon day d takes the promo of the history day d - 14k, k the smallest that lands
--       on or before the store's last history date; weekdays line up because 14 = 2 weeks),
--     - no state holidays ('0') and no school holidays.

with

plan as (

    select * from {{ ref('stg_rossmann__plan') }}

),

history as (

    select
        store_id,
        sale_date,
        is_open,
        is_promo
    from {{ ref('stg_rossmann__sales') }}

),

calendar as (

    select * from {{ ref('int_calendar') }}

),

plan_exists as (

    select count(*) > 0 as has_plan from plan

),

last_history as (

    select max(sale_date) as last_history_date from history

),

store_last_history as (

    select
        store_id,
        max(sale_date) as store_last_history_date
    from history
    group by store_id

),

recent_history as (

    select
        history.store_id,
        history.sale_date,
        history.is_open,
        history.is_promo,
        store_last_history.store_last_history_date
    from history
    inner join store_last_history
        on history.store_id = store_last_history.store_id
    where history.sale_date
        > store_last_history.store_last_history_date - {{ 7 * var('assumed_open_lookback_weeks') }}

),

open_weekdays as (

    select
        store_id,
        cast(isodow(sale_date) as integer) as day_of_week,
        -- strict majority of the observed days of that weekday
        2 * count(*) filter (where is_open) > count(*) as is_open
    from recent_history
    group by all

),

promo_pattern as (

    select
        store_id,
        sale_date as reference_date,
        is_promo
    from recent_history
    where sale_date > store_last_history_date - {{ var('assumed_promo_pattern_days') }}

),

planned_stores as (

    -- with a plan, its stores; without one, every store with history
    select
        store_id,
        store_last_history_date
    from store_last_history
    where not (select has_plan from plan_exists)
        or store_id in (select plan.store_id from plan)

),

horizon as (

    select
        calendar.calendar_date as sale_date,
        calendar.day_of_week
    from calendar
    cross join last_history
    where calendar.calendar_date > last_history.last_history_date
        and calendar.calendar_date
        <= last_history.last_history_date + {{ var('assumed_horizon_days') }}

),

assumed_calendar as (

    select
        planned_stores.store_id,
        horizon.sale_date,
        horizon.day_of_week,
        cast(null as integer) as plan_id,
        coalesce(open_weekdays.is_open, false) as is_open,
        false as is_open_imputed,
        coalesce(promo_pattern.is_promo, false) as is_promo,
        '0' as state_holiday,
        false as is_school_holiday,
        'assumed_calendar' as plan_source

    from planned_stores
    cross join horizon
    left join open_weekdays
        on planned_stores.store_id = open_weekdays.store_id
        and horizon.day_of_week = open_weekdays.day_of_week
    left join promo_pattern
        on planned_stores.store_id = promo_pattern.store_id
        and promo_pattern.reference_date = horizon.sale_date
        - {{ var('assumed_promo_pattern_days') }} * cast(ceil(
            (horizon.sale_date - planned_stores.store_last_history_date)
            / {{ var('assumed_promo_pattern_days') }}.0
        ) as integer)
    -- only the days the plan lacks
    where not exists (
        select 1
        from plan
        where plan.store_id = planned_stores.store_id
            and plan.sale_date = horizon.sale_date
    )

),

supplied_plan as (

    select
        store_id,
        sale_date,
        cast(isodow(sale_date) as integer) as day_of_week,
        plan_id,
        coalesce(is_open, true) as is_open,
        is_open is null as is_open_imputed,
        is_promo,
        state_holiday,
        is_school_holiday,
        'plan' as plan_source

    from plan

),

unioned as (

    select * from supplied_plan
    union all
    select * from assumed_calendar

)

select * from unioned
