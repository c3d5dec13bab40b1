-- Date spine: one row per calendar day from the first history date to the end of the
-- forecast horizon (the assumed horizon after the last history date, or the last plan date
-- when it is later), with the calendar attributes the marts use.

with

history_bounds as (

    select
        min(sale_date) as first_history_date,
        max(sale_date) as last_history_date
    from {{ ref('stg_rossmann__sales') }}

),

plan_bounds as (

    select
        min(sale_date) as first_plan_date,
        max(sale_date) as last_plan_date
    from {{ ref('stg_rossmann__plan') }}

),

bounds as (

    select
        least(first_history_date, first_plan_date) as first_date,
        -- a plan that ends early is filled with assumed days up to the horizon
        greatest(
            coalesce(last_plan_date, last_history_date),
            last_history_date + {{ var('assumed_horizon_days') }}
        ) as last_date
    from history_bounds
    cross join plan_bounds

),

spine as (

    select cast(unnest(generate_series(
        cast(first_date as timestamp),
        cast(last_date as timestamp),
        interval 1 day
    )) as date) as calendar_date
    from bounds
    where first_date is not null

),

calendar as (

    select
        calendar_date,
        {{ calendar_attributes('calendar_date') }}
    from spine

)

select * from calendar
