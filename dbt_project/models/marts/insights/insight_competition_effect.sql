-- Does a nearby competitor cost sales? Per band of distance to the nearest competitor: stores, their
-- mean open-day sales, customers and basket, and, for the stores whose competitor opened inside the
-- history, the change in sales after the opening (from insight_competition_opening_by_store: the
-- store's sales relative to the chain level, 182 days before versus after the opening month).
-- The first row (distance_band 'all', band_order 0) covers every store.

with

stores as (

    select * from {{ ref('dim_stores') }}

),

openings as (

    select * from {{ ref('insight_competition_opening_by_store') }}

),

store_history as (

    select
        store_id,
        sum(sales) filter (where is_open) as open_day_sales,
        sum(customers) filter (where is_open) as open_day_customers

    from {{ ref('fct_store_daily_features') }}
    where is_history
    group by store_id

),

banded as (

    select
        stores.store_id,
        stores.competition_distance_m,
        stores.avg_sales_per_open_day,
        stores.avg_customers_per_open_day,
        store_history.open_day_sales,
        store_history.open_day_customers,
        case
            when stores.competition_distance_m is null then 9
            when stores.competition_distance_m < 250 then 1
            when stores.competition_distance_m < 500 then 2
            when stores.competition_distance_m < 1000 then 3
            when stores.competition_distance_m < 2500 then 4
            when stores.competition_distance_m < 5000 then 5
            when stores.competition_distance_m < 10000 then 6
            when stores.competition_distance_m < 20000 then 7
            else 8
        end as band_order

    from stores
    left join store_history
        on stores.store_id = store_history.store_id

),

band_labels as (

    select * from (values
        (0, 'all', null, null),
        (1, '< 250 m', 0, 250),
        (2, '250-500 m', 250, 500),
        (3, '500 m-1 km', 500, 1000),
        (4, '1-2.5 km', 1000, 2500),
        (5, '2.5-5 km', 2500, 5000),
        (6, '5-10 km', 5000, 10000),
        (7, '10-20 km', 10000, 20000),
        (8, '>= 20 km', 20000, null),
        (9, 'unknown', null, null)
    ) as t(band_order, distance_band, min_distance_m, max_distance_m)

),

aggregated as (

    select
        coalesce(banded.band_order, 0) as band_order,
        cast(count(*) as integer) as n_stores,
        median(banded.competition_distance_m) as median_distance_m,
        avg(banded.avg_sales_per_open_day) as avg_sales_per_open_day,
        avg(banded.avg_customers_per_open_day) as avg_customers_per_open_day,
        sum(banded.open_day_sales) / nullif(sum(banded.open_day_customers), 0) as sales_per_customer,
        cast(count(openings.store_id) as integer) as n_stores_opened_in_history,
        cast(count(*) filter (where openings.is_comparable) as integer) as n_stores_compared,
        avg(openings.sales_change_pct) as avg_sales_change_pct_after_opening,
        avg(openings.relative_sales_change_pct) as avg_relative_sales_change_pct_after_opening,
        median(openings.relative_sales_change_pct) as median_relative_sales_change_pct_after_opening

    from banded
    left join openings
        on banded.store_id = openings.store_id
    group by grouping sets ((), (banded.band_order))

),

final as (

    select
        aggregated.band_order,
        band_labels.distance_band,
        cast(band_labels.min_distance_m as double) as min_distance_m,
        cast(band_labels.max_distance_m as double) as max_distance_m,
        aggregated.n_stores,
        aggregated.median_distance_m,
        aggregated.avg_sales_per_open_day,
        aggregated.avg_customers_per_open_day,
        aggregated.sales_per_customer,
        aggregated.n_stores_opened_in_history,
        aggregated.n_stores_compared,
        aggregated.avg_sales_change_pct_after_opening,
        aggregated.avg_relative_sales_change_pct_after_opening,
        aggregated.median_relative_sales_change_pct_after_opening

    from aggregated
    inner join band_labels
        on aggregated.band_order = band_labels.band_order

)

select * from final
order by band_order
