-- How do sales behave around holidays? Average sales per day relative to the store's normal level in
-- the 7 days before, during and the 7 days after each kind of holiday: public holidays (state
-- holiday 'a'), Easter ('b'), Christmas ('c') and school holidays.
--
-- Events: per store and kind, holiday days at most 3 days apart form one event (Good Friday ..
-- Easter Monday, Christmas Day + Boxing Day, a school-holiday block); the days between its first and
-- last day are "during". "before" / "after" are the 7 calendar days before the first / after the last
-- day; a day that is itself a holiday of the kind only counts as "during", and a day may be "after"
-- one event and "before" the next of the same kind.
-- Normal level: the store's mean sales (and customers) on open history days of the same weekday
-- without a state or school holiday. Indexes are ratios of sums: 100 * sum(actual) / sum(normal).

{% set window_days = 7 %}
{% set merge_gap_days = 3 %}

with

store_days as (

    select * from {{ ref('fct_store_daily_features') }}
    where is_history

),

normal_level as (

    select
        store_id,
        day_of_week,
        avg(sales) as normal_sales,
        avg(customers) as normal_customers

    from store_days
    where is_open and not is_state_holiday and not is_school_holiday
    group by all

),

holiday_days as (

    select
        store_id,
        sale_date,
        case state_holiday
            when 'a' then 'public_holiday'
            when 'b' then 'easter'
            when 'c' then 'christmas'
        end as holiday_kind
    from store_days
    where is_state_holiday

    union all

    select
        store_id,
        sale_date,
        'school_holiday' as holiday_kind
    from store_days
    where is_school_holiday

),

-- gaps and islands: a new event starts after more than merge_gap_days without a day of the kind
islands as (

    select
        *,
        sum(case when gap_days is null or gap_days > {{ merge_gap_days }} then 1 else 0 end) over (
            partition by store_id, holiday_kind order by sale_date
        ) as event_number

    from (
        select
            *,
            sale_date - lag(sale_date) over (partition by store_id, holiday_kind order by sale_date)
                as gap_days
        from holiday_days
    )

),

events as (

    select
        store_id,
        holiday_kind,
        event_number,
        min(sale_date) as event_start,
        max(sale_date) as event_end

    from islands
    group by all

),

-- every calendar day of each event's window with its phase
event_window_days as (

    select
        store_id,
        holiday_kind,
        event_number,
        cast(window_day as date) as sale_date,
        case
            when window_day < event_start then 'before'
            when window_day > event_end then 'after'
            else 'during'
        end as phase

    from (
        select
            *,
            unnest(generate_series(
                cast(event_start - {{ window_days }} as timestamp),
                cast(event_end + {{ window_days }} as timestamp),
                interval 1 day
            )) as window_day
        from events
    )

),

phase_days as (

    -- one row per store-day, kind and phase (a day in the windows of two events counts once)
    select distinct
        event_window_days.store_id,
        event_window_days.holiday_kind,
        event_window_days.phase,
        event_window_days.sale_date

    from event_window_days
    inner join store_days
        on event_window_days.store_id = store_days.store_id
        and event_window_days.sale_date = store_days.sale_date
    where event_window_days.phase = 'during'
        or not (
            case event_window_days.holiday_kind
                when 'public_holiday' then store_days.state_holiday = 'a'
                when 'easter' then store_days.state_holiday = 'b'
                when 'christmas' then store_days.state_holiday = 'c'
                else store_days.is_school_holiday
            end
        )

),

store_events as (

    select
        holiday_kind,
        cast(count(*) as integer) as n_store_events,
        cast(count(distinct event_start) as integer) as n_event_dates

    from events
    group by all

),

measured as (

    select
        phase_days.holiday_kind,
        phase_days.phase,
        store_days.is_open,
        store_days.sales,
        store_days.customers,
        normal_level.normal_sales,
        normal_level.normal_customers

    from phase_days
    inner join store_days
        on phase_days.store_id = store_days.store_id
        and phase_days.sale_date = store_days.sale_date
    left join normal_level
        on store_days.store_id = normal_level.store_id
        and store_days.day_of_week = normal_level.day_of_week

),

aggregated as (

    select
        holiday_kind,
        phase,
        cast(count(*) as integer) as n_store_days,
        cast(count(*) filter (where is_open) as integer) as n_open_store_days,
        avg(sales) filter (where is_open) as avg_sales_open_days,
        avg(normal_sales) filter (where is_open) as avg_normal_sales_open_days,
        sum(sales) filter (where is_open and normal_sales is not null) as open_sales,
        sum(normal_sales) filter (where is_open and normal_sales is not null) as open_normal_sales,
        sum(customers) filter (where is_open and normal_customers is not null) as open_customers,
        sum(normal_customers) filter (where is_open and normal_customers is not null)
            as open_normal_customers,
        sum(sales) filter (where normal_sales is not null) as all_sales,
        sum(normal_sales) filter (where normal_sales is not null) as all_normal_sales

    from measured
    group by all

),

final as (

    select
        aggregated.holiday_kind,
        case aggregated.holiday_kind
            when 'public_holiday' then 'a'
            when 'easter' then 'b'
            when 'christmas' then 'c'
        end as state_holiday,
        aggregated.phase,
        case aggregated.phase when 'before' then 1 when 'during' then 2 else 3 end as phase_order,
        store_events.n_store_events,
        store_events.n_event_dates,
        aggregated.n_store_days,
        aggregated.n_open_store_days,
        aggregated.n_open_store_days / nullif(aggregated.n_store_days, 0) as open_share,
        aggregated.avg_sales_open_days,
        aggregated.avg_normal_sales_open_days,
        100 * aggregated.open_sales / nullif(aggregated.open_normal_sales, 0) as sales_index,
        100 * aggregated.open_sales / nullif(aggregated.open_normal_sales, 0) - 100 as sales_uplift_pct,
        100 * aggregated.open_customers / nullif(aggregated.open_normal_customers, 0) as customers_index,
        100 * aggregated.all_sales / nullif(aggregated.all_normal_sales, 0) as sales_index_all_days

    from aggregated
    inner join store_events
        on aggregated.holiday_kind = store_events.holiday_kind

)

select * from final
order by
    case holiday_kind
        when 'public_holiday' then 1 when 'easter' then 2 when 'christmas' then 3 else 4
    end,
    phase_order
