-- What does each store format (store type x assortment) look like? Stores, mean open-day sales,
-- customers and basket, open days per week, which stores open on Sundays and what Sunday opening
-- does to their weekdays (Monday to Saturday sales, and the Monday catch-up after a closed Sunday).
--
-- A Sunday opener is a store open on more than half of its history Sundays. The Monday index is
-- Monday sales / mean Tuesday..Saturday sales * 100 (over each group's open days).

with

store_days as (

    select * from {{ ref('fct_store_daily_features') }}
    where is_history

),

stores as (

    select * from {{ ref('dim_stores') }}

),

per_store as (

    select
        store_id,
        count(*) as n_history_days,
        count(*) filter (where is_open) as n_open_days,
        count(*) filter (where day_of_week = 7) as n_sundays,
        count(*) filter (where day_of_week = 7 and is_open) as n_open_sundays,
        sum(sales) filter (where is_open) as open_sales,
        sum(customers) filter (where is_open) as open_customers,
        sum(sales) filter (where is_open and day_of_week between 1 and 6) as mon_sat_sales,
        count(*) filter (where is_open and day_of_week between 1 and 6) as mon_sat_open_days,
        sum(sales) filter (where is_open and day_of_week = 1) as monday_sales,
        count(*) filter (where is_open and day_of_week = 1) as monday_open_days,
        sum(sales) filter (where is_open and day_of_week between 2 and 6) as tue_sat_sales,
        count(*) filter (where is_open and day_of_week between 2 and 6) as tue_sat_open_days,
        sum(sales) filter (where is_open and day_of_week = 7) as sunday_sales

    from store_days
    group by store_id

),

classified as (

    select
        stores.store_id,
        stores.store_type,
        stores.assortment,
        per_store.*exclude (store_id),
        per_store.store_id is not null as has_history,
        coalesce(per_store.n_open_sundays > 0.5 * per_store.n_sundays, false) as is_sunday_opener,
        7.0 * per_store.n_open_days / nullif(per_store.n_history_days, 0) as open_days_per_week

    from stores
    left join per_store
        on stores.store_id = per_store.store_id

),

aggregated as (

    select
        store_type,
        assortment,
        cast(count(*) as integer) as n_stores,
        cast(count(*) filter (where has_history) as integer) as n_stores_with_history,
        sum(open_sales) / nullif(sum(n_open_days), 0) as avg_sales_per_open_day,
        sum(open_customers) / nullif(sum(n_open_days), 0) as avg_customers_per_open_day,
        sum(open_sales) / nullif(sum(open_customers), 0) as sales_per_customer,
        avg(open_days_per_week) as avg_open_days_per_week,
        cast(count(*) filter (where is_sunday_opener) as integer) as n_sunday_openers,

        ---------- Sunday openers vs the other stores of the format
        sum(mon_sat_sales) filter (where is_sunday_opener)
            / nullif(sum(mon_sat_open_days) filter (where is_sunday_opener), 0)
            as sunday_openers_avg_sales_mon_sat,
        sum(mon_sat_sales) filter (where not is_sunday_opener)
            / nullif(sum(mon_sat_open_days) filter (where not is_sunday_opener), 0)
            as others_avg_sales_mon_sat,
        sum(sunday_sales) filter (where is_sunday_opener)
            / nullif(sum(n_open_sundays) filter (where is_sunday_opener), 0)
            as sunday_openers_avg_sales_sunday,
        (sum(monday_sales) filter (where is_sunday_opener)
            / nullif(sum(monday_open_days) filter (where is_sunday_opener), 0))
            / nullif(sum(tue_sat_sales) filter (where is_sunday_opener)
                / nullif(sum(tue_sat_open_days) filter (where is_sunday_opener), 0), 0)
            as sunday_openers_monday_ratio,
        (sum(monday_sales) filter (where not is_sunday_opener)
            / nullif(sum(monday_open_days) filter (where not is_sunday_opener), 0))
            / nullif(sum(tue_sat_sales) filter (where not is_sunday_opener)
                / nullif(sum(tue_sat_open_days) filter (where not is_sunday_opener), 0), 0)
            as others_monday_ratio

    from classified
    group by all

),

final as (

    select
        store_type,
        assortment,
        n_stores,
        n_stores_with_history,
        avg_sales_per_open_day,
        avg_customers_per_open_day,
        sales_per_customer,
        avg_open_days_per_week,
        n_sunday_openers,
        n_sunday_openers / nullif(n_stores, 0) as sunday_opener_share,
        sunday_openers_avg_sales_mon_sat,
        others_avg_sales_mon_sat,
        100 * (sunday_openers_avg_sales_mon_sat / nullif(others_avg_sales_mon_sat, 0) - 1)
            as sunday_openers_mon_sat_diff_pct,
        sunday_openers_avg_sales_sunday,
        100 * sunday_openers_avg_sales_sunday / nullif(sunday_openers_avg_sales_mon_sat, 0)
            as sunday_openers_sunday_index,
        100 * sunday_openers_monday_ratio as sunday_openers_monday_index,
        100 * others_monday_ratio as others_monday_index

    from aggregated

)

select * from final
order by store_type, assortment
