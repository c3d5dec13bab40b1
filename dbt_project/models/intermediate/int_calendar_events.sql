{{ config(materialized='table') }}

-- Store-independent calendar features for every day of int_calendar: trend and seasonality
-- terms, and the distance to Christmas (25 December) and Easter Sunday. They use only the
-- date, so they are known for history and plan days alike (no leakage).
-- Easter Sunday is computed with the anonymous Gregorian algorithm (Meeus/Jones/Butcher)
-- for every year of the calendar plus one year on either side.

{%- set cap = var('event_distance_cap_days') %}

with

calendar as (

    select * from {{ ref('int_calendar') }}

),

first_history as (

    select min(sale_date) as first_history_date
    from {{ ref('stg_rossmann__sales') }}

),

years as (

    select unnest(generate_series(min(year) - 1, max(year) + 1)) as y
    from calendar

),

easter_terms as (

    select
        y,
        y % 19 as a,
        y // 100 as b,
        y % 100 as c
    from years

),

easter_terms_2 as (

    select
        *,
        b // 4 as d,
        b % 4 as e,
        (b - (b + 8) // 25 + 1) // 3 as g,
        c // 4 as i,
        c % 4 as k
    from easter_terms

),

easter_terms_3 as (

    select
        *,
        (19 * a + b - d - g + 15) % 30 as h
    from easter_terms_2

),

easter_terms_4 as (

    select
        *,
        (32 + 2 * e + 2 * i - h - k) % 7 as l
    from easter_terms_3

),

easter as (

    select
        cast(y as integer) as year,
        make_date(
            cast(y as integer),
            cast((h + l - 7 * ((a + 11 * h + 22 * l) // 451) + 114) // 31 as integer),
            cast((h + l - 7 * ((a + 11 * h + 22 * l) // 451) + 114) % 31 + 1 as integer)
        ) as easter_sunday
    from easter_terms_4

),

events as (

    select
        calendar.calendar_date,
        calendar.year,
        cast(calendar.calendar_date - first_history.first_history_date as integer)
            as days_since_start,
        cast((calendar.day_of_month - 1) // 7 + 1 as integer) as week_of_month,
        sin(2 * pi() * calendar.day_of_year / 365.25) as day_of_year_sin,
        cos(2 * pi() * calendar.day_of_year / 365.25) as day_of_year_cos,
        this_easter.easter_sunday as easter_sunday,
        case
            when calendar.calendar_date <= this_easter.easter_sunday
                then this_easter.easter_sunday - calendar.calendar_date
            else next_easter.easter_sunday - calendar.calendar_date
        end as raw_days_until_easter,
        case
            when calendar.calendar_date >= this_easter.easter_sunday
                then calendar.calendar_date - this_easter.easter_sunday
            else calendar.calendar_date - last_easter.easter_sunday
        end as raw_days_since_easter,
        case
            when calendar.calendar_date <= make_date(calendar.year, 12, 25)
                then make_date(calendar.year, 12, 25) - calendar.calendar_date
            else make_date(calendar.year + 1, 12, 25) - calendar.calendar_date
        end as raw_days_until_christmas,
        case
            when calendar.calendar_date >= make_date(calendar.year, 12, 25)
                then calendar.calendar_date - make_date(calendar.year, 12, 25)
            else calendar.calendar_date - make_date(calendar.year - 1, 12, 25)
        end as raw_days_since_christmas

    from calendar
    cross join first_history
    inner join easter as this_easter
        on calendar.year = this_easter.year
    inner join easter as next_easter
        on calendar.year + 1 = next_easter.year
    inner join easter as last_easter
        on calendar.year - 1 = last_easter.year

),

final as (

    select
        calendar_date,
        days_since_start,
        week_of_month,
        day_of_year_sin,
        day_of_year_cos,
        easter_sunday,
        cast(least(raw_days_until_easter, {{ cap }}) as integer) as days_until_easter,
        cast(least(raw_days_since_easter, {{ cap }}) as integer) as days_since_easter,
        cast(least(raw_days_until_christmas, {{ cap }}) as integer) as days_until_christmas,
        cast(least(raw_days_since_christmas, {{ cap }}) as integer) as days_since_christmas

    from events

)

select * from final
