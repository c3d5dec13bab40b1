{{ config(materialized='table') }}

-- Store-level sales statistics for a backtest cut, computed ONLY from history rows strictly
-- before the cut date: var('feature_cut_date') ('YYYY-MM-DD'; default null = the day after the
-- last history date, i.e. all history). Open days with sales > 0 only (as Kaggle's RMSPE).
-- Two windows ending the day before the cut: the last quarter (91 days) and the last year
-- (364 days = 52 whole weeks, every weekday equally often).
-- Grain: one row per store and `grain`:
--   'store'            all days                  (day_of_week NULL, is_promo NULL)
--   'store_dow'        per ISO weekday            (is_promo NULL)
--   'store_promo'      per promo / no promo       (day_of_week NULL)
--   'store_dow_promo'  per weekday and promo
-- Not joined onto fct_store_daily_features (the mart is built once, the statistics depend on
-- the cut): join it yourself on store_id (+ day_of_week / is_promo) for rows on or after the cut.
--   dbt build --select int_store_sales_stats --vars '{feature_cut_date: "2015-06-20"}'

with

history as (

    select
        store_id,
        sale_date,
        cast(isodow(sale_date) as integer) as day_of_week,
        is_promo,
        cast(sales as double) as sales,
        cast(customers as double) as customers,
        is_open
    from {{ ref('stg_rossmann__sales') }}

),

cut as (

    -- one row: the var, or the day after the last history date
    select
        coalesce(
            {%- if var('feature_cut_date') %}
            cast('{{ var("feature_cut_date") }}' as date),
            {%- endif %}
            max(sale_date) + 1
        ) as feature_cut_date
    from history

),

recent as (

    select
        history.*,
        history.sale_date >= cut.feature_cut_date - 91 as in_quarter,
        cut.feature_cut_date
    from history
    cross join cut
    where history.sale_date < cut.feature_cut_date
        and history.sale_date >= cut.feature_cut_date - 364
        and history.is_open
        and history.sales > 0

),

stats as (

    select
        store_id,
        case
            when grouping(day_of_week) = 0 and grouping(is_promo) = 0 then 'store_dow_promo'
            when grouping(day_of_week) = 0 then 'store_dow'
            when grouping(is_promo) = 0 then 'store_promo'
            else 'store'
        end as grain,
        day_of_week,
        is_promo,
        any_value(feature_cut_date) as feature_cut_date,

        ---------- last quarter
        cast(count(*) filter (where in_quarter) as integer) as n_days_quarter,
        avg(sales) filter (where in_quarter) as sales_mean_quarter,
        median(sales) filter (where in_quarter) as sales_median_quarter,
        avg(customers) filter (where in_quarter) as customers_mean_quarter,
        median(customers) filter (where in_quarter) as customers_median_quarter,
        sum(sales) filter (where in_quarter)
            / nullif(sum(customers) filter (where in_quarter), 0) as sales_per_customer_quarter,

        ---------- last year
        cast(count(*) as integer) as n_days_year,
        avg(sales) as sales_mean_year,
        median(sales) as sales_median_year,
        avg(customers) as customers_mean_year,
        median(customers) as customers_median_year,
        sum(sales) / nullif(sum(customers), 0) as sales_per_customer_year

    from recent
    group by grouping sets (
        (store_id),
        (store_id, day_of_week),
        (store_id, is_promo),
        (store_id, day_of_week, is_promo)
    )

)

select * from stats
