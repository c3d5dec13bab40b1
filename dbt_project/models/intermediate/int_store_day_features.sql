-- Per store-day features: calendar attributes, store attributes, competition and Promo2
-- state on that day, and distances (in calendar days, capped at {{ var('distance_cap_days') }})
-- to the nearest state holiday and closed day of the same store, looking both back and
-- ahead over the store's history and plan rows together.

{%- set cap = var('distance_cap_days') %}

with

store_days as (

    select * from {{ ref('int_store_days') }}

),

calendar as (

    select * from {{ ref('int_calendar') }}

),

stores as (

    select * from {{ ref('int_stores_enriched') }}

),

event_dates as (

    select
        *,
        -- one sort per store serves all four windows; last/first_value ... ignore nulls
        -- is about twice as fast in DuckDB as max/min over the same frames
        last_value(case when state_holiday <> '0' then sale_date end ignore nulls)
            over store_past as last_state_holiday_date,
        first_value(case when state_holiday <> '0' then sale_date end ignore nulls)
            over store_future as next_state_holiday_date,
        last_value(case when not is_open then sale_date end ignore nulls)
            over store_past as last_closed_date,
        first_value(case when not is_open then sale_date end ignore nulls)
            over store_future as next_closed_date

    from store_days

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

features as (

    select
        event_dates.store_id,
        event_dates.sale_date,
        event_dates.is_history,
        event_dates.row_source,
        event_dates.sales,
        event_dates.customers,
        event_dates.is_open,
        event_dates.is_promo,
        event_dates.state_holiday,
        event_dates.state_holiday <> '0' as is_state_holiday,
        event_dates.is_school_holiday,

        ---------- calendar
        calendar.day_of_week,
        calendar.day_of_month,
        calendar.month,
        calendar.year,
        calendar.week_of_year,
        calendar.day_of_year,

        ---------- store
        stores.store_type,
        stores.assortment,
        stores.competition_distance_m,

        ---------- competition: a known competitor whose opening (when known) has passed
        coalesce(
            stores.competition_distance_m is not null
            and (
                stores.competition_open_date is null
                or event_dates.sale_date >= stores.competition_open_date
            ),
            false
        ) as is_competition_open,
        case
            when stores.competition_distance_m is not null
                and event_dates.sale_date >= stores.competition_open_date
                then cast(
                    12 * (calendar.year - stores.competition_open_since_year)
                    + (calendar.month - stores.competition_open_since_month)
                    as integer
                )
        end as months_since_competition_open,

        ---------- Promo2: in Promo2 and its start week reached (unknown start: active)
        coalesce(
            stores.is_in_promo2
            and (
                stores.promo2_start_date is null
                or event_dates.sale_date >= stores.promo2_start_date
            ),
            false
        ) as is_promo2_active,

        ---------- distances
        cast(least(
            coalesce(event_dates.sale_date - event_dates.last_state_holiday_date, {{ cap }}),
            {{ cap }}
        ) as integer) as days_since_state_holiday,
        cast(least(
            coalesce(event_dates.next_state_holiday_date - event_dates.sale_date, {{ cap }}),
            {{ cap }}
        ) as integer) as days_until_state_holiday,
        cast(least(
            coalesce(event_dates.sale_date - event_dates.last_closed_date, {{ cap }}),
            {{ cap }}
        ) as integer) as days_since_closed,
        cast(least(
            coalesce(event_dates.next_closed_date - event_dates.sale_date, {{ cap }}),
            {{ cap }}
        ) as integer) as days_until_closed,

        ---------- kept for is_promo2_month below
        calendar.month_abbr,
        stores.promo_interval

    from event_dates
    inner join calendar
        on event_dates.sale_date = calendar.calendar_date
    left join stores
        on event_dates.store_id = stores.store_id

),

final as (

    select
        * exclude (month_abbr, promo_interval),
        -- Promo2 restarts in the months listed in PromoInterval
        coalesce(
            is_promo2_active and contains(promo_interval, month_abbr),
            false
        ) as is_promo2_month

    from features

)

select * from final
