{{ config(materialized='table') }}

-- Store-level sales statistics at every fold cut of int_feature_cuts, each computed ONLY from
-- history rows strictly before its cut: the models' store features (forecasting.features
-- reads the rows of one cut) and a BI table of "normal" sales per store, weekday and promo.
-- Sales statistics use open days with sales > 0 (as Kaggle's RMSPE) in three windows ending
-- the day before the cut: the last quarter (91 days), the last year (364 days = 52 whole
-- weeks, so every weekday counts equally) and the long run (var store_stats_long_days, default
-- 1092 = 3 years: steadier levels, two or three of each calendar month).
-- One row per cut, store and grain (a store with a selling day in the long window); the key columns a grain rolls up are NULL:
--   'store'  'store_dow' (ISO weekday)  'store_promo'  'store_dow_promo'  'store_month'

with

cuts as (

    select feature_cut_date from {{ ref('int_feature_cuts') }}
    where cut_kind <> 'training_block'

),

history as (

    select
        store_id,
        sale_date,
        cast(isodow(sale_date) as integer) as day_of_week,
        cast(month(sale_date) as integer) as month,
        is_promo,
        is_open,
        sales,
        customers
    from {{ ref('stg_rossmann__sales') }}

),

before_cut as (

    select
        cuts.feature_cut_date,
        history.*,
        history.sale_date >= cuts.feature_cut_date - 91 as in_quarter,
        history.sale_date >= cuts.feature_cut_date - 364 as in_year
    from history
    inner join cuts
        on history.sale_date < cuts.feature_cut_date
        and history.sale_date >= cuts.feature_cut_date - {{ var('store_stats_long_days') }}

),

selling_days as (

    select
        *,
        cast(sales as double) as sales_amount,
        cast(customers as double) as customers_count,
        ln(1 + sales) as log_sales,
        ln(1 + customers) as log_customers
    from before_cut
    where is_open and sales > 0

),

open_share as (

    -- share of the store's rows in the year that were open days (closed Sundays, holidays, ...)
    select
        feature_cut_date,
        store_id,
        avg(case when is_open then 1.0 else 0.0 end) filter (where in_year) as open_share_year
    from before_cut
    group by feature_cut_date, store_id

),

stats as (

    select
        feature_cut_date,
        store_id,
        case
            when grouping(month) = 0 then 'store_month'
            when grouping(day_of_week) = 0 and grouping(is_promo) = 0 then 'store_dow_promo'
            when grouping(day_of_week) = 0 then 'store_dow'
            when grouping(is_promo) = 0 then 'store_promo'
            else 'store'
        end as grain,
        day_of_week,
        is_promo,
        month,

        {%- for window in ['quarter', 'year'] %}

        ---------- last {{ window }}
        cast(count(*) filter (where in_{{ window }}) as integer) as n_days_{{ window }},
        avg(sales_amount) filter (where in_{{ window }}) as sales_mean_{{ window }},
        median(sales_amount) filter (where in_{{ window }}) as sales_median_{{ window }},
        avg(customers_count) filter (where in_{{ window }}) as customers_mean_{{ window }},
        median(customers_count) filter (where in_{{ window }}) as customers_median_{{ window }},
        sum(sales_amount) filter (where in_{{ window }})
            / nullif(sum(customers_count) filter (where in_{{ window }}), 0) as sales_per_customer_{{ window }},
        avg(log_sales) filter (where in_{{ window }}) as log_sales_mean_{{ window }},
        {%- endfor %}

        ---------- long run
        cast(count(*) as integer) as n_days_long,
        avg(sales_amount) as sales_mean_long,
        sum(sales_amount) / nullif(sum(customers_count), 0) as sales_per_customer_long,
        avg(log_sales) as log_sales_mean_long,
        stddev_pop(log_sales) as log_sales_std_long,
        avg(log_customers) as log_customers_mean_long

    from selling_days
    group by grouping sets (
        (feature_cut_date, store_id),
        (feature_cut_date, store_id, day_of_week),
        (feature_cut_date, store_id, is_promo),
        (feature_cut_date, store_id, day_of_week, is_promo),
        (feature_cut_date, store_id, month)
    )

),

store_level as (

    select feature_cut_date, store_id, log_sales_mean_long
    from stats
    where grain = 'store'

),

final as (

    select
        stats.*,
        -- the month's log-sales deviation from the store's long-run mean, shrunk toward 0 when
        -- the month has few selling days (n / (n + 10)): the store's own yearly seasonality
        case
            when stats.grain = 'store_month'
                then (stats.log_sales_mean_long - store_level.log_sales_mean_long)
                    * stats.n_days_long / (stats.n_days_long + 10.0)
        end as month_log_sales_effect,
        case when stats.grain = 'store' then open_share.open_share_year end as open_share_year
    from stats
    left join store_level
        on stats.feature_cut_date = store_level.feature_cut_date
        and stats.store_id = store_level.store_id
    left join open_share
        on stats.feature_cut_date = open_share.feature_cut_date
        and stats.store_id = open_share.store_id

)

select * from final
