{#
    THE definition of the store-day features: the whole query from store-days to the rows of
    marts.fct_store_daily_features, in its column order. fct_store_daily_features is this macro
    over every history and plan row; POST /predict runs the same SQL (compiled into
    marts.serving_feature_query) over the requested store-days together with the mart's rows of
    their stores, so a served feature row equals the mart's row for the same store-day.

      store_days          store_id, sale_date, is_history, row_source, sales, customers, is_open,
                          is_promo, state_holiday, is_school_holiday; one row per store-day, with
                          EVERY row of each store (runs and distances read the neighbours)
      stores              the columns of int_stores_enriched (marts.dim_stores has them)
      state_groups        store_id, state_group (int_store_state_groups); missing -> group 0
      first_history_date  scalar SQL expression: the first history date (the trend's origin)

    Features read only the known calendar (open, promo, state and school holidays, dates) and
    store attributes, never sales or customers:
    * calendar attributes (calendar_attributes) and Christmas / Easter distances, trend and
      seasonality terms (calendar_events), derived from each date;
    * competition and Promo2 state on the day, competition months capped at
      var('competition_months_cap'), months since Promo2 started, month in the Promo2 cycle;
    * distances to the nearest state holiday, closed day and promo day of the same store, back
      and ahead over all its rows, capped at var('distance_cap_days') (the cap also when none
      is in reach, e.g. across a history gap: days without rows are no events);
    * promo and school-holiday runs: position in the run of consecutive calendar days (a day
      without a row ends a run), first / last promo day, the school-holiday run's length and the
      distances to the nearest school-holiday day (capped at var('distance_cap_days')), and
      whether the ISO week, the week before and the week after have a school-holiday day of the
      store;
    * event counts: promo days, state holidays, school-holiday days and closed days of the store
      in the day's ISO week, the week before and the week after, and in the 7 days before and
      the 7 days after the day (the day itself not counted); days without a row count nowhere;
    * closures (store_closure_spells): multi-day ones (at least 2 calendar days closed or
      without rows: days since the last ended and until the next starts) and long ones (at
      least var('long_closure_min_days') days: days since the reopening after one and until the
      next one), capped at var('event_distance_cap_days'), and whether the day lies within
      var('after_refurbishment_days') days after a refurbishment;
    * the day in the Promo2 cycle (days since the first of the latest PromoInterval month);
    * the store's state group.
#}
{% macro store_day_features(store_days, stores, state_groups, first_history_date) %}
{%- set cap = var('distance_cap_days') %}
{%- set event_cap = var('event_distance_cap_days') %}

with

feature_days as (

    select
        store_id,
        sale_date,
        is_history,
        row_source,
        sales,
        customers,
        is_open,
        is_promo,
        state_holiday,
        is_school_holiday
    from {{ store_days }}

),

feature_calendar as (

    select
        calendar_date,
        {{ calendar_attributes('calendar_date') }}
    from (select distinct sale_date as calendar_date from feature_days)

),

feature_calendar_events as (

    {{ calendar_events('feature_calendar', first_history_date) }}

),

-- closures of at least 2 days ("multi-day"); the long closures are the spells among them of at
-- least long_closure_min_days (one pass of the spell query serves both)
multi_day_closure_spells as (

    {{ store_closure_spells('feature_days', min_days=2) }}

),

closure_spells as (

    select * from multi_day_closure_spells
    where n_days >= {{ var('long_closure_min_days') }}

),

---------- neighbouring rows: run starts and ends (one sort per store serves these windows)

neighbours as (

    select
        *,
        lag(sale_date) over store_order = sale_date - 1 as has_previous_day,
        lead(sale_date) over store_order = sale_date + 1 as has_next_day,
        lag(is_promo) over store_order as previous_is_promo,
        lead(is_promo) over store_order as next_is_promo,
        lag(is_school_holiday) over store_order as previous_is_school_holiday,
        lead(is_school_holiday) over store_order as next_is_school_holiday
    from feature_days
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
            as is_school_holiday_run_start,
        is_school_holiday
            and not coalesce(has_next_day and next_is_school_holiday, false)
            as is_school_holiday_run_end
    from neighbours

),

---------- the nearest events back and ahead (one sort per store serves these windows;
---------- last/first_value ... ignore nulls is about twice as fast as max/min in DuckDB)

event_dates as (

    select
        *,
        last_value(case when state_holiday <> '0' then sale_date end ignore nulls)
            over store_past as last_state_holiday_date,
        first_value(case when state_holiday <> '0' then sale_date end ignore nulls)
            over store_future as next_state_holiday_date,
        last_value(case when not is_open then sale_date end ignore nulls)
            over store_past as last_closed_date,
        first_value(case when not is_open then sale_date end ignore nulls)
            over store_future as next_closed_date,
        last_value(case when is_promo then sale_date end ignore nulls)
            over store_past as last_promo_date,
        first_value(case when is_promo then sale_date end ignore nulls)
            over store_future as next_promo_date,
        last_value(case when is_promo_run_start then sale_date end ignore nulls)
            over store_past as promo_run_start_date,
        last_value(case when is_school_holiday_run_start then sale_date end ignore nulls)
            over store_past as school_holiday_run_start_date,
        first_value(case when is_school_holiday_run_end then sale_date end ignore nulls)
            over store_future as school_holiday_run_end_date,
        last_value(case when is_school_holiday then sale_date end ignore nulls)
            over store_past as last_school_holiday_date,
        first_value(case when is_school_holiday then sale_date end ignore nulls)
            over store_future as next_school_holiday_date,
        -- event counts in the 7 calendar days before / after the day (a range over dates:
        -- days without a row count nowhere)
        {%- for window in ['past_7', 'next_7'] %}
        cast(count(*) filter (where is_promo) over store_{{ window }} as integer)
            as promo_days_{{ window }},
        cast(count(*) filter (where state_holiday <> '0') over store_{{ window }} as integer)
            as state_holidays_{{ window }},
        cast(count(*) filter (where is_school_holiday) over store_{{ window }} as integer)
            as school_holidays_{{ window }},
        cast(count(*) filter (where not is_open) over store_{{ window }} as integer)
            as closed_days_{{ window }}{{ ',' if not loop.last }}
        {%- endfor %}
    from run_starts
    window
        store_past as (
            partition by store_id order by sale_date
            rows between unbounded preceding and current row
        ),
        store_future as (
            partition by store_id order by sale_date
            rows between current row and unbounded following
        ),
        store_past_7 as (
            partition by store_id order by sale_date
            range between interval 7 day preceding and interval 1 day preceding
        ),
        store_next_7 as (
            partition by store_id order by sale_date
            range between interval 1 day following and interval 7 day following
        )

),

---------- school holidays per store and ISO week

store_weeks as (

    select
        feature_days.store_id,
        feature_calendar.week_start,
        bool_or(feature_days.is_school_holiday) as has_school_holiday,
        cast(count(*) filter (where feature_days.is_promo) as integer) as promo_days,
        cast(count(*) filter (where feature_days.state_holiday <> '0') as integer)
            as state_holidays,
        cast(count(*) filter (where feature_days.is_school_holiday) as integer)
            as school_holidays,
        cast(count(*) filter (where not feature_days.is_open) as integer) as closed_days
    from feature_days
    inner join feature_calendar
        on feature_days.sale_date = feature_calendar.calendar_date
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
        ) as has_school_holiday_next_week,
        {%- for count in ['promo_days', 'state_holidays', 'school_holidays', 'closed_days'] %}
        {{ count }} as {{ count }}_this_week,
        case
            when lag(week_start) over store_week_order = week_start - 7
                then lag({{ count }}) over store_week_order
            else 0
        end as {{ count }}_last_week,
        case
            when lead(week_start) over store_week_order = week_start + 7
                then lead({{ count }}) over store_week_order
            else 0
        end as {{ count }}_next_week{{ ',' if not loop.last }}
        {%- endfor %}
    from store_weeks
    window store_week_order as (partition by store_id order by week_start)

),

---------- long closures and refurbishments

with_closures as (

    select
        event_dates.*,
        last_reopening.reopen_date as last_reopen_date,
        last_refurbishment.reopen_date as last_refurbishment_reopen_date,
        next_closure.spell_start as next_closure_start,
        last_multi_day_closure.spell_end as last_multi_day_closure_end,
        next_multi_day_closure.spell_start as next_multi_day_closure_start

    from event_dates
    -- latest reopening on or before the day
    asof left join (
        select store_id, reopen_date from closure_spells where reopen_date is not null
    ) as last_reopening
        on event_dates.store_id = last_reopening.store_id
        and event_dates.sale_date >= last_reopening.reopen_date
    asof left join (
        select store_id, reopen_date from closure_spells
        where reopen_date is not null and is_refurbishment
    ) as last_refurbishment
        on event_dates.store_id = last_refurbishment.store_id
        and event_dates.sale_date >= last_refurbishment.reopen_date
    -- the spell the day is in, or the next one (spells are disjoint: smallest end >= day)
    asof left join (
        select store_id, spell_start, spell_end from closure_spells
    ) as next_closure
        on event_dates.store_id = next_closure.store_id
        and event_dates.sale_date <= next_closure.spell_end
    -- the multi-day closure the day is in or the last one before it (largest start <= day) ...
    asof left join (
        select store_id, spell_start, spell_end from multi_day_closure_spells
    ) as last_multi_day_closure
        on event_dates.store_id = last_multi_day_closure.store_id
        and event_dates.sale_date >= last_multi_day_closure.spell_start
    -- ... and the one the day is in or the next one
    asof left join (
        select store_id, spell_start, spell_end from multi_day_closure_spells
    ) as next_multi_day_closure
        on event_dates.store_id = next_multi_day_closure.store_id
        and event_dates.sale_date <= next_multi_day_closure.spell_end

),

---------- everything together

features as (

    select
        store_day.store_id,
        store_day.sale_date,
        store_day.is_history,
        store_day.sales,
        store_day.customers,
        store_day.is_open,
        store_day.is_promo,
        store_day.state_holiday,
        store_day.state_holiday <> '0' as is_state_holiday,
        store_day.is_school_holiday,

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
                or store_day.sale_date >= stores.competition_open_date
            ),
            false
        ) as is_competition_open,
        case
            when stores.competition_distance_m is not null
                and store_day.sale_date >= stores.competition_open_date
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
                or store_day.sale_date >= stores.promo2_start_date
            ),
            false
        ) as is_promo2_active,

        ---------- distances to state holidays and closed days
        cast(least(
            coalesce(store_day.sale_date - store_day.last_state_holiday_date, {{ cap }}), {{ cap }}
        ) as integer) as days_since_state_holiday,
        cast(least(
            coalesce(store_day.next_state_holiday_date - store_day.sale_date, {{ cap }}), {{ cap }}
        ) as integer) as days_until_state_holiday,
        cast(least(
            coalesce(store_day.sale_date - store_day.last_closed_date, {{ cap }}), {{ cap }}
        ) as integer) as days_since_closed,
        cast(least(
            coalesce(store_day.next_closed_date - store_day.sale_date, {{ cap }}), {{ cap }}
        ) as integer) as days_until_closed,

        store_day.row_source,

        ---------- promo cycle
        cast(case
            when store_day.is_promo then store_day.sale_date - store_day.promo_run_start_date + 1
            else 0
        end as integer) as promo_run_day,
        store_day.is_promo_run_start as is_promo_first_day,
        store_day.is_promo_run_end as is_promo_last_day,
        cast(least(
            coalesce(store_day.sale_date - store_day.last_promo_date, {{ cap }}), {{ cap }}
        ) as integer) as days_since_promo,
        cast(least(
            coalesce(store_day.next_promo_date - store_day.sale_date, {{ cap }}), {{ cap }}
        ) as integer) as days_until_promo,

        ---------- Christmas / Easter
        events.days_until_christmas,
        events.days_since_christmas,
        events.days_until_easter,
        events.days_since_easter,
        events.days_from_carnival_monday,

        ---------- school holidays
        weeks.has_school_holiday as is_school_holiday_week,
        weeks.has_school_holiday_last_week as school_holiday_last_week,
        weeks.has_school_holiday_next_week as school_holiday_next_week,
        cast(case
            when store_day.is_school_holiday
                then store_day.sale_date - store_day.school_holiday_run_start_date + 1
            else 0
        end as integer) as school_holiday_run_day,

        ---------- long closures / refurbishment
        cast(least(
            coalesce(store_day.sale_date - store_day.last_reopen_date, {{ event_cap }}),
            {{ event_cap }}
        ) as integer) as days_since_reopening,
        -- (coalesce before greatest: DuckDB's greatest ignores NULLs)
        cast(least(
            greatest(
                coalesce(store_day.next_closure_start - store_day.sale_date, {{ event_cap }}), 0
            ),
            {{ event_cap }}
        ) as integer) as days_until_long_closure,
        coalesce(
            store_day.sale_date - store_day.last_refurbishment_reopen_date
            < {{ var('after_refurbishment_days') }},
            false
        ) as is_after_refurbishment,

        ---------- competition months, capped
        cast(case
            when stores.competition_distance_m is null then 0
            when stores.competition_open_date is null then {{ var('competition_months_cap') }}
            when store_day.sale_date < stores.competition_open_date then 0
            else least(
                12 * (calendar.year - stores.competition_open_since_year)
                + (calendar.month - stores.competition_open_since_month),
                {{ var('competition_months_cap') }}
            )
        end as integer) as competition_open_months_capped,

        ---------- Promo2 cycle
        case
            when stores.is_in_promo2 and store_day.sale_date >= stores.promo2_start_date
                then cast(
                    12 * (calendar.year - year(stores.promo2_start_date))
                    + (calendar.month - month(stores.promo2_start_date))
                    as integer
                )
        end as months_since_promo2_start,
        case
            when stores.is_in_promo2
                and (stores.promo2_start_date is null
                    or store_day.sale_date >= stores.promo2_start_date)
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
        events.days_since_start,
        events.day_of_year_sin,
        events.day_of_year_cos,
        events.week_of_month,
        events.days_until_month_end,
        events.weekdays_until_month_end,

        ---------- state group (0: a store without history to derive it from)
        coalesce(state_groups.state_group, 0) as state_group,

        ---------- event counts: the ISO week, the week before and after; 7 days back and ahead
        {%- for count in ['promo_days', 'state_holidays', 'school_holidays', 'closed_days'] %}
        weeks.{{ count }}_this_week,
        weeks.{{ count }}_last_week,
        weeks.{{ count }}_next_week,
        store_day.{{ count }}_past_7,
        store_day.{{ count }}_next_7,
        {%- endfor %}

        ---------- multi-day closures (0 on their days; coalesce before greatest, as above)
        cast(least(
            greatest(
                coalesce(store_day.sale_date - store_day.last_multi_day_closure_end, {{ event_cap }}),
                0
            ),
            {{ event_cap }}
        ) as integer) as days_since_multi_day_closure,
        cast(least(
            greatest(
                coalesce(
                    store_day.next_multi_day_closure_start - store_day.sale_date, {{ event_cap }}
                ),
                0
            ),
            {{ event_cap }}
        ) as integer) as days_until_multi_day_closure,

        ---------- school-holiday runs and distances
        cast(case
            when store_day.is_school_holiday
                then store_day.school_holiday_run_end_date
                    - store_day.school_holiday_run_start_date + 1
            else 0
        end as integer) as school_holiday_run_length,
        cast(least(
            coalesce(store_day.sale_date - store_day.last_school_holiday_date, {{ cap }}), {{ cap }}
        ) as integer) as days_since_school_holiday,
        cast(least(
            coalesce(store_day.next_school_holiday_date - store_day.sale_date, {{ cap }}), {{ cap }}
        ) as integer) as days_until_school_holiday,

        ---------- kept for is_promo2_month below
        calendar.month_abbr,
        stores.promo_interval

    from with_closures as store_day
    inner join feature_calendar as calendar
        on store_day.sale_date = calendar.calendar_date
    inner join feature_calendar_events as events
        on store_day.sale_date = events.calendar_date
    inner join store_week_neighbours as weeks
        on store_day.store_id = weeks.store_id
        and calendar.week_start = weeks.week_start
    left join {{ stores }} as stores
        on store_day.store_id = stores.store_id
    left join {{ state_groups }} as state_groups
        on store_day.store_id = state_groups.store_id

)

select
    store_id,
    sale_date,
    is_history,
    sales,
    customers,
    is_open,
    is_promo,
    state_holiday,
    is_state_holiday,
    is_school_holiday,
    day_of_week,
    day_of_month,
    month,
    year,
    week_of_year,
    day_of_year,
    store_type,
    assortment,
    competition_distance_m,
    is_competition_open,
    months_since_competition_open,
    is_promo2_active,
    -- Promo2 restarts in the months listed in PromoInterval
    coalesce(is_promo2_active and contains(promo_interval, month_abbr), false) as is_promo2_month,
    days_since_state_holiday,
    days_until_state_holiday,
    days_since_closed,
    days_until_closed,
    row_source,
    promo_run_day,
    is_promo_first_day,
    is_promo_last_day,
    days_since_promo,
    days_until_promo,
    days_until_christmas,
    days_since_christmas,
    days_until_easter,
    days_since_easter,
    days_from_carnival_monday,
    is_school_holiday_week,
    school_holiday_last_week,
    school_holiday_next_week,
    school_holiday_run_day,
    days_since_reopening,
    days_until_long_closure,
    is_after_refurbishment,
    competition_open_months_capped,
    months_since_promo2_start,
    promo2_cycle_month,
    days_since_start,
    day_of_year_sin,
    day_of_year_cos,
    week_of_month,
    days_until_month_end,
    weekdays_until_month_end,
    state_group,
    {%- for count in ['promo_days', 'state_holidays', 'school_holidays', 'closed_days'] %}
    {{ count }}_this_week,
    {{ count }}_last_week,
    {{ count }}_next_week,
    {{ count }}_past_7,
    {{ count }}_next_7,
    {%- endfor %}
    days_since_multi_day_closure,
    days_until_multi_day_closure,
    school_holiday_run_length,
    days_since_school_holiday,
    days_until_school_holiday,
    -- Promo2 restarts on the first of each PromoInterval month
    cast(sale_date - cast(
        date_trunc('month', sale_date) - to_months(promo2_cycle_month) as date
    ) as integer) as promo2_cycle_day

from features

{% endmacro %}
