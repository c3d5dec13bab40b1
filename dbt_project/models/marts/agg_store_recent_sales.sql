{{ config(materialized='table') }}

-- The store's recent sales at EVERY cut of int_feature_cuts (the fold cuts and the earlier
-- 'training_block' cuts, one backtest horizon apart), each computed ONLY from history rows
-- strictly before its cut: what a forecast made at that cut knows about the store's latest
-- weeks. The tabular models join each row onto the cut it is forecast from: a horizon row onto
-- its fold's cut, an older training row onto the latest cut on or before it (its block), so
-- the relation between recent sales and the days after a cut is learnt from history and no
-- fold ever sees its own horizon (forecasting.features.recent_sales_features).
-- Selling days (open, sales > 0) as in agg_store_sales_stats; windows end the day before the
-- cut: 28 days (4 weeks), 56 days (8 weeks), 91 days (a quarter), 364 days (a year of whole
-- weeks) and the quarter one year earlier (days 365 .. 455 before the cut).
-- The carnival memory: the store's log sales on the latest carnival Monday (with any store selling)
-- before the cut against its Monday mean of the year (same promo status), and on the Tuesday after
-- it against its Tuesdays. Carnival empties many stores of some states, the same stores every year
-- (bench/README.md, "Error analysis" and "Carnival Tuesday").
-- The state-holiday memory: the store's mean log sales on the state holidays it sold on in the
-- window before the cut, against its same weekday and promo status of the year. The few stores open
-- on a holiday do the same on the next one: correlation 0.93 (bench/README.md, "Open on a holiday").
-- One row per cut, store, ISO weekday and promo status with a selling day in the year before
-- the cut; the store_* columns are the store's (all weekdays), repeated on its rows.

with

cuts as (

    select feature_cut_date from {{ ref('int_feature_cuts') }}

),

selling_days as (

    select
        store_id,
        sale_date,
        cast(isodow(sale_date) as integer) as day_of_week,
        is_promo,
        state_holiday <> '0' as is_state_holiday,
        ln(1 + sales) as log_sales
    from {{ ref('stg_rossmann__sales') }}
    where is_open and sales > 0

),

before_cut as (

    select
        cuts.feature_cut_date,
        selling_days.*,
        cast(cuts.feature_cut_date - selling_days.sale_date as integer) as days_before_cut
    from selling_days
    inner join cuts
        on selling_days.sale_date < cuts.feature_cut_date
        and selling_days.sale_date >= cuts.feature_cut_date - 455

),

store_level as (

    select
        feature_cut_date,
        store_id,
        avg(log_sales) filter (where days_before_cut <= 28) as store_log_sales_mean_4_weeks,
        avg(log_sales) filter (where days_before_cut <= 91) as store_log_sales_mean_quarter,
        avg(log_sales) filter (where days_before_cut <= 364) as store_log_sales_mean_year,
        avg(log_sales) filter (where days_before_cut > 364) as store_log_sales_mean_quarter_year_ago
    from before_cut
    group by feature_cut_date, store_id

),

weekday_promo as (

    select
        feature_cut_date,
        store_id,
        day_of_week,
        is_promo,
        cast(count(*) as integer) as n_days_year,
        avg(log_sales) as log_sales_mean_year,
        cast(count(*) filter (where days_before_cut <= 56) as integer) as n_days_8_weeks,
        avg(log_sales) filter (where days_before_cut <= 56) as log_sales_mean_8_weeks,
        arg_min(log_sales, days_before_cut) as log_sales_last,
        min(days_before_cut) as days_since_last
    from before_cut
    where days_before_cut <= 364
    group by feature_cut_date, store_id, day_of_week, is_promo

),

-- the calendar rule (macro calendar_events) over the selling days' dates: this model needs no plan
sale_calendar as (

    select
        calendar_date,
        {{ calendar_attributes('calendar_date') }}
    from (select distinct sale_date as calendar_date from selling_days)

),

sale_calendar_events as (

    {{ calendar_events('sale_calendar', '(select min(calendar_date) from sale_calendar)') }}

),

last_carnival_monday as (

    select
        cuts.feature_cut_date,
        max(events.calendar_date) as carnival_monday
    from cuts
    inner join sale_calendar_events as events
        on events.days_from_carnival_monday = 0
        and events.calendar_date < cuts.feature_cut_date
    group by cuts.feature_cut_date

),

-- the carnival Monday and Tuesday of that carnival, each against the store's same weekday and promo
-- status of the year (the Tuesday only when it lies before the cut too)
store_carnival_days as (

    select
        last_carnival_monday.feature_cut_date,
        selling_days.store_id,
        cast(selling_days.sale_date - last_carnival_monday.carnival_monday as integer) as carnival_day,
        selling_days.log_sales - weekday_promo.log_sales_mean_year as log_sales_vs_year
    from last_carnival_monday
    inner join selling_days
        on selling_days.sale_date between last_carnival_monday.carnival_monday
            and last_carnival_monday.carnival_monday + 1
        and selling_days.sale_date < last_carnival_monday.feature_cut_date
    inner join weekday_promo
        on weekday_promo.feature_cut_date = last_carnival_monday.feature_cut_date
        and weekday_promo.store_id = selling_days.store_id
        and weekday_promo.day_of_week = selling_days.day_of_week
        and weekday_promo.is_promo = selling_days.is_promo

),

store_carnival as (

    select
        feature_cut_date,
        store_id,
        max(log_sales_vs_year) filter (where carnival_day = 0) as store_log_sales_carnival_vs_year,
        max(log_sales_vs_year) filter (where carnival_day = 1) as store_log_sales_carnival_tuesday_vs_year
    from store_carnival_days
    group by feature_cut_date, store_id

),

store_state_holiday as (

    select
        before_cut.feature_cut_date,
        before_cut.store_id,
        avg(before_cut.log_sales - weekday_promo.log_sales_mean_year) as store_log_sales_state_holiday_vs_year
    from before_cut
    inner join weekday_promo
        on weekday_promo.feature_cut_date = before_cut.feature_cut_date
        and weekday_promo.store_id = before_cut.store_id
        and weekday_promo.day_of_week = before_cut.day_of_week
        and weekday_promo.is_promo = before_cut.is_promo
    where before_cut.is_state_holiday
    group by before_cut.feature_cut_date, before_cut.store_id

)

select
    weekday_promo.feature_cut_date,
    weekday_promo.store_id,
    weekday_promo.day_of_week,
    weekday_promo.is_promo,
    weekday_promo.n_days_year,
    weekday_promo.log_sales_mean_year,
    weekday_promo.n_days_8_weeks,
    weekday_promo.log_sales_mean_8_weeks,
    weekday_promo.log_sales_last,
    weekday_promo.days_since_last,
    weekday_promo.log_sales_mean_8_weeks - weekday_promo.log_sales_mean_year
        as log_sales_8_weeks_vs_year,
    weekday_promo.log_sales_last - weekday_promo.log_sales_mean_year as log_sales_last_vs_year,
    store_level.store_log_sales_mean_4_weeks,
    store_level.store_log_sales_mean_quarter,
    store_level.store_log_sales_mean_year,
    store_level.store_log_sales_mean_quarter_year_ago,
    store_level.store_log_sales_mean_4_weeks - store_level.store_log_sales_mean_year
        as store_log_sales_4_weeks_vs_year,
    store_level.store_log_sales_mean_quarter - store_level.store_log_sales_mean_quarter_year_ago
        as store_log_sales_trend,
    store_carnival.store_log_sales_carnival_vs_year,
    store_carnival.store_log_sales_carnival_tuesday_vs_year,
    store_state_holiday.store_log_sales_state_holiday_vs_year

from weekday_promo
inner join store_level
    on weekday_promo.feature_cut_date = store_level.feature_cut_date
    and weekday_promo.store_id = store_level.store_id
left join store_carnival
    on weekday_promo.feature_cut_date = store_carnival.feature_cut_date
    and weekday_promo.store_id = store_carnival.store_id
left join store_state_holiday
    on weekday_promo.feature_cut_date = store_state_holiday.feature_cut_date
    and weekday_promo.store_id = store_state_holiday.store_id
