-- Every store-day the platform knows about: history (with actuals) and the plan for the
-- forecast horizon (supplied or assumed), one row per store and day. History gaps
-- (e.g. refurbishment closures without rows) stay gaps: no rows are fabricated.

with

history as (

    select * from {{ ref('stg_rossmann__sales') }}

),

plan as (

    select * from {{ ref('int_plan_store_days') }}

),

history_days as (

    select
        store_id,
        sale_date,
        true as is_history,
        'history' as row_source,
        cast(sales as double) as sales,
        cast(customers as double) as customers,
        is_open,
        is_promo,
        state_holiday,
        is_school_holiday

    from history

),

plan_days as (

    select
        store_id,
        sale_date,
        false as is_history,
        plan_source as row_source,
        cast(null as double) as sales,
        cast(null as double) as customers,
        is_open,
        is_promo,
        state_holiday,
        is_school_holiday

    from plan

),

unioned as (

    select * from history_days
    union all
    select * from plan_days

)

select * from unioned
