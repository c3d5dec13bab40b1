-- Leakage-free calendar and event features per store-day (history and plan rows alike):
-- they read only the known calendar (open, promo, state and school holidays, dates) and the
-- store attributes, never sales or customers, so they are as available for the forecast
-- horizon as for the history. Joined onto the contract columns in fct_store_daily_features.
--
-- * promo cycle: position in the current run of consecutive promo days, first/last day of a
--   run, days since the last / until the next promo day (capped at {{ var('distance_cap_days') }});
-- * school holidays: day in the current run of consecutive school-holiday days, and whether
--   the ISO week, the week before and the week after contain a school-holiday day of the store;
-- * long closures (>= {{ var('long_closure_min_days') }} days closed or without rows, see
--   int_store_closure_spells): days since the reopening after one and until the next one
--   (capped at {{ var('event_distance_cap_days') }}), and whether the day lies within
--   {{ var('after_refurbishment_days') }} days after a refurbishment (>= {{ var('refurbishment_min_days') }} days);
-- * Christmas / Easter distances, trend and seasonality terms (int_calendar_events);
-- * competition months capped at {{ var('competition_months_cap') }}, months since Promo2
--   started and the month within the Promo2 cycle;
-- * the store's state group (int_store_state_groups).
-- Runs are consecutive CALENDAR days: a day without a row ends a run.

{%- set cap = var('distance_cap_days') %}
{%- set event_cap = var('event_distance_cap_days') %}

with

store_days as (

    select
        store_id,
        sale_date,
        is_open,
        is_promo,
        is_school_holiday
    from {{ ref('int_store_days') }}

),

calendar as (

    select * from {{ ref('int_calendar') }}

),

calendar_events as (

    select * from {{ ref('int_calendar_events') }}

),

stores as (

    select * from {{ ref('int_stores_enriched') }}

),

state_groups as (

    select * from {{ ref('int_store_state_groups') }}

),

closure_spells as (

    select * from {{ ref('int_store_closure_spells') }}

),

---------- promo and school-holiday runs (one sort per store serves every window)

neighbours as (

    select
        *,
        lag(sale_date) over store_order = sale_date - 1 as has_previous_day,
        lead(sale_date) over store_order = sale_date + 1 as has_next_day,
        lag(is_promo) over store_order as previous_is_promo,
        lead(is_promo) over store_order as next_is_promo,
        lag(is_school_holiday) over store_order as previous_is_school_holiday
    from store_days
    window store_order as (partition by store_id order by sale_date)

),

run_starts as (

    select
        *,
        is_promo
            and not coalesce(has_previous_day and previous_is_promo, false) as is_promo_run_start,
        is_promo
            and not coalesce(has_next_day and next_is_promo, false) as is_promo_run_end,
        is_school_holiday
            and not coalesce(has_previous_day and previous_is_school_holiday, false)
            as is_school_holiday_run_start
    from neighbours

),

run_dates as (

    select
        *,
        last_value(case when is_promo_run_start then sale_date end ignore nulls)
            over store_past as promo_run_start_date,
        last_value(case when is_school_holiday_run_start then sale_date end ignore nulls)
            over store_past as school_holiday_run_start_date,
        last_value(case when is_promo then sale_date end ignore nulls)
            over store_past as last_promo_date,
        first_value(case when is_promo then sale_date end ignore nulls)
            over store_future as next_promo_date
    from run_starts
    window
        store_past as (
            partition by store_id order by sale_date
            rows between unbounded preceding and current row
        ),
        store_future as (
            partition by store_id order by sale_date
            rows between current row and unbounded following
        )

),

---------- school holidays per store and ISO week

store_weeks as (

    select
        store_days.store_id,
        calendar.week_start,
        bool_or(store_days.is_school_holiday) as has_school_holiday
    from store_days
    inner join calendar
        on store_days.sale_date = calendar.calendar_date
    group by all

),

store_week_neighbours as (

    select
        store_id,
        week_start,
        has_school_holiday,
        coalesce(
            lag(week_start) over store_week_order = week_start - 7
            and lag(has_school_holiday) over store_week_order,
            false
        ) as has_school_holiday_last_week,
        coalesce(
            lead(week_start) over store_week_order = week_start + 7
            and lead(has_school_holiday) over store_week_order,
            false
        ) as has_school_holiday_next_week
    from store_weeks
    window store_week_order as (partition by store_id order by week_start)

),

---------- long closures and refurbishments

with_closures as (

    select
        run_dates.*,
        last_reopening.reopen_date as last_reopen_date,
        last_refurbishment.reopen_date as last_refurbishment_reopen_date,
        next_closure.spell_start as next_closure_start

    from run_dates
    -- latest reopening on or before the day
    asof left join (
        select store_id, reopen_date from closure_spells where reopen_date is not null
    ) as last_reopening
        on run_dates.store_id = last_reopening.store_id
        and run_dates.sale_date >= last_reopening.reopen_date
    asof left join (
        select store_id, reopen_date from closure_spells
        where reopen_date is not null and is_refurbishment
    ) as last_refurbishment
        on run_dates.store_id = last_refurbishment.store_id
        and run_dates.sale_date >= last_refurbishment.reopen_date
    -- the spell the day is in, or the next one (spells are disjoint: smallest end >= day)
    asof left join (
        select store_id, spell_start, spell_end from closure_spells
    ) as next_closure
        on run_dates.store_id = next_closure.store_id
        and run_dates.sale_date <= next_closure.spell_end

),

---------- everything together

features as (

    select
        with_closures.store_id,
        with_closures.sale_date,

        ---------- promo cycle
        cast(case
            when with_closures.is_promo
                then with_closures.sale_date - with_closures.promo_run_start_date + 1
            else 0
        end as integer) as promo_run_day,
        with_closures.is_promo_run_start as is_promo_first_day,
        with_closures.is_promo_run_end as is_promo_last_day,
        cast(least(
            coalesce(with_closures.sale_date - with_closures.last_promo_date, {{ cap }}), {{ cap }}
        ) as integer) as days_since_promo,
        cast(least(
            coalesce(with_closures.next_promo_date - with_closures.sale_date, {{ cap }}), {{ cap }}
        ) as integer) as days_until_promo,

        ---------- Christmas / Easter
        calendar_events.days_until_christmas,
        calendar_events.days_since_christmas,
        calendar_events.days_until_easter,
        calendar_events.days_since_easter,

        ---------- school holidays
        store_week_neighbours.has_school_holiday as is_school_holiday_week,
        store_week_neighbours.has_school_holiday_last_week as school_holiday_last_week,
        store_week_neighbours.has_school_holiday_next_week as school_holiday_next_week,
        cast(case
            when with_closures.is_school_holiday
                then with_closures.sale_date - with_closures.school_holiday_run_start_date + 1
            else 0
        end as integer) as school_holiday_run_day,

        ---------- long closures / refurbishment
        cast(least(
            coalesce(with_closures.sale_date - with_closures.last_reopen_date, {{ event_cap }}),
            {{ event_cap }}
        ) as integer) as days_since_reopening,
        -- (coalesce before greatest: DuckDB's greatest ignores NULLs)
        cast(least(
            greatest(
                coalesce(
                    with_closures.next_closure_start - with_closures.sale_date, {{ event_cap }}
                ),
                0
            ),
            {{ event_cap }}
        ) as integer) as days_until_long_closure,
        coalesce(
            with_closures.sale_date - with_closures.last_refurbishment_reopen_date
            < {{ var('after_refurbishment_days') }},
            false
        ) as is_after_refurbishment,

        ---------- competition
        cast(case
            when stores.competition_distance_m is null then 0
            when stores.competition_open_date is null then {{ var('competition_months_cap') }}
            when with_closures.sale_date < stores.competition_open_date then 0
            else least(
                12 * (calendar.year - stores.competition_open_since_year)
                + (calendar.month - stores.competition_open_since_month),
                {{ var('competition_months_cap') }}
            )
        end as integer) as competition_open_months_capped,

        ---------- Promo2
        case
            when stores.is_in_promo2 and with_closures.sale_date >= stores.promo2_start_date
                then cast(
                    12 * (calendar.year - year(stores.promo2_start_date))
                    + (calendar.month - month(stores.promo2_start_date))
                    as integer
                )
        end as months_since_promo2_start,
        case
            when stores.is_in_promo2
                and (stores.promo2_start_date is null
                    or with_closures.sale_date >= stores.promo2_start_date)
                then cast(list_min(list_transform(
                    list_filter(
                        list_transform(
                            string_split(stores.promo_interval, ','),
                            lambda m: list_position(
                                ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun',
                                 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'],
                                left(trim(m), 3)
                            )
                        ),
                        lambda p: p is not null
                    ),
                    lambda p: (calendar.month - p + 12) % 12
                )) as integer)
        end as promo2_cycle_month,

        ---------- trend / seasonality
        calendar_events.days_since_start,
        calendar_events.day_of_year_sin,
        calendar_events.day_of_year_cos,
        calendar_events.week_of_month,

        ---------- state group (0: store without history to derive it from)
        coalesce(state_groups.state_group, 0) as state_group

    from with_closures
    inner join calendar
        on with_closures.sale_date = calendar.calendar_date
    inner join calendar_events
        on with_closures.sale_date = calendar_events.calendar_date
    inner join store_week_neighbours
        on with_closures.store_id = store_week_neighbours.store_id
        and calendar.week_start = store_week_neighbours.week_start
    left join stores
        on with_closures.store_id = stores.store_id
    left join state_groups
        on with_closures.store_id = state_groups.store_id

)

select * from features
