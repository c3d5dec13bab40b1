{#
    The calendar rules, from the date alone: one definition for the date spine (int_calendar),
    the per-day calendar events (int_calendar_events) and the store-day features
    (store_day_features), which derive them for any date, inside or outside the spine.
#}

{#- The calendar attributes of the DATE expression `date`, as a select list. -#}
{% macro calendar_attributes(date) -%}
    cast(isodow({{ date }}) as integer) as day_of_week,
    cast(dayofmonth({{ date }}) as integer) as day_of_month,
    cast(month({{ date }}) as integer) as month,
    cast(year({{ date }}) as integer) as year,
    cast(weekofyear({{ date }}) as integer) as week_of_year,
    cast(isoyear({{ date }}) as integer) as iso_year,
    cast(dayofyear({{ date }}) as integer) as day_of_year,
    cast(date_trunc('week', {{ date }}) as date) as week_start,
    cast(date_trunc('month', {{ date }}) as date) as month_start,
    -- Kaggle PromoInterval spells September 'Sept'; 'Sep' matches it as a substring
    ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][
        month({{ date }})
    ] as month_abbr
{%- endmacro %}


{#-
    Store-independent calendar events per day of `calendar` (a relation with calendar_date,
    year, day_of_month and day_of_year, one row per date): the trend term (days since the
    scalar SQL expression `first_history_date`), week of the month, days and weekdays (Monday to
    Friday) until the month's last day (German pay day: sales peak on the last shopping days of a
    month; when the month ends on a weekend, on its last Friday), yearly Fourier terms and
    the distances to 25 December and Easter Sunday, capped at var('event_distance_cap_days'), and
    the signed distance to the carnival Monday (Rosenmontag, Easter Sunday - 48 days), capped
    both ways: carnival closes or empties many stores in some states (bench/README.md, "Error
    analysis") and, moving with Easter, falls anywhere from 2 February to 8 March.
    Easter Sunday comes from the anonymous Gregorian algorithm (Meeus/Jones/Butcher) for every
    year of the calendar plus one on either side, so it is known without any holiday data.
-#}
{% macro calendar_events(calendar, first_history_date) %}
{%- set cap = var('event_distance_cap_days') %}

with

event_days as (

    select calendar_date, year, day_of_month, day_of_year from {{ calendar }}

),

easter_years as (

    select unnest(generate_series(min(year) - 1, max(year) + 1)) as y
    from event_days

),

easter_terms as (

    select
        y,
        y % 19 as a,
        y // 100 as b,
        y % 100 as c
    from easter_years

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
        event_days.calendar_date,
        cast(event_days.calendar_date - {{ first_history_date }} as integer) as days_since_start,
        cast((event_days.day_of_month - 1) // 7 + 1 as integer) as week_of_month,
        cast(last_day(event_days.calendar_date) - event_days.calendar_date as integer) as days_until_month_end,
        cast(
            {{ weekdays_before('isodow(event_days.calendar_date) + (last_day(event_days.calendar_date) - event_days.calendar_date)') }}
            - {{ weekdays_before('isodow(event_days.calendar_date)') }}
            as integer
        ) as weekdays_until_month_end,
        sin(2 * pi() * event_days.day_of_year / 365.25) as day_of_year_sin,
        cos(2 * pi() * event_days.day_of_year / 365.25) as day_of_year_cos,
        this_easter.easter_sunday,
        case
            when event_days.calendar_date <= this_easter.easter_sunday
                then this_easter.easter_sunday - event_days.calendar_date
            else next_easter.easter_sunday - event_days.calendar_date
        end as raw_days_until_easter,
        case
            when event_days.calendar_date >= this_easter.easter_sunday
                then event_days.calendar_date - this_easter.easter_sunday
            else event_days.calendar_date - last_easter.easter_sunday
        end as raw_days_since_easter,
        case
            when event_days.calendar_date <= make_date(event_days.year, 12, 25)
                then make_date(event_days.year, 12, 25) - event_days.calendar_date
            else make_date(event_days.year + 1, 12, 25) - event_days.calendar_date
        end as raw_days_until_christmas,
        case
            when event_days.calendar_date >= make_date(event_days.year, 12, 25)
                then event_days.calendar_date - make_date(event_days.year, 12, 25)
            else event_days.calendar_date - make_date(event_days.year - 1, 12, 25)
        end as raw_days_since_christmas,
        event_days.calendar_date - (this_easter.easter_sunday - 48) as raw_days_from_carnival_monday

    from event_days
    inner join easter as this_easter
        on event_days.year = this_easter.year
    inner join easter as next_easter
        on event_days.year + 1 = next_easter.year
    inner join easter as last_easter
        on event_days.year - 1 = last_easter.year

)

select
    calendar_date,
    days_since_start,
    week_of_month,
    days_until_month_end,
    weekdays_until_month_end,
    day_of_year_sin,
    day_of_year_cos,
    easter_sunday,
    cast(least(raw_days_until_easter, {{ cap }}) as integer) as days_until_easter,
    cast(least(raw_days_since_easter, {{ cap }}) as integer) as days_since_easter,
    cast(least(raw_days_until_christmas, {{ cap }}) as integer) as days_until_christmas,
    cast(least(raw_days_since_christmas, {{ cap }}) as integer) as days_since_christmas,
    cast(greatest(least(raw_days_from_carnival_monday, {{ cap }}), -{{ cap }}) as integer) as days_from_carnival_monday

from events

{% endmacro %}


{#- Mondays to Fridays among the first `n` days of a run of days that starts on a Monday (`n`: a SQL
    integer expression).  The weekdays strictly after a date up to its month's end are then
    weekdays_before(isodow + days left) - weekdays_before(isodow). -#}
{% macro weekdays_before(n) -%}
    (5 * (({{ n }}) // 7) + least(({{ n }}) % 7, 5))
{%- endmacro %}
