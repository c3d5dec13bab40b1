-- One row per store: its attributes and a summary of its sales history.

with

stores as (

    select * from {{ ref('int_stores_enriched') }}

),

history as (

    select * from {{ ref('stg_rossmann__sales') }}

),

history_summary as (

    select
        store_id,
        min(sale_date) as first_history_date,
        max(sale_date) as last_history_date,
        cast(count(*) as integer) as n_history_days,
        cast(count(*) filter (where is_open) as integer) as n_open_days,
        avg(cast(sales as double)) filter (where is_open) as avg_sales_per_open_day,
        avg(cast(customers as double)) filter (where is_open) as avg_customers_per_open_day

    from history
    group by store_id

),

final as (

    select
        stores.store_id,
        stores.store_type,
        stores.assortment,
        stores.competition_distance_m,
        stores.competition_open_since_month,
        stores.competition_open_since_year,
        stores.competition_open_date,
        stores.is_in_promo2,
        stores.promo2_since_week,
        stores.promo2_since_year,
        stores.promo2_start_date,
        stores.promo_interval,
        history_summary.first_history_date,
        history_summary.last_history_date,
        coalesce(history_summary.n_history_days, 0) as n_history_days,
        coalesce(history_summary.n_open_days, 0) as n_open_days,
        -- calendar days inside the store's history span without a row (refurbishment gaps)
        coalesce(cast(
            history_summary.last_history_date - history_summary.first_history_date + 1
            - history_summary.n_history_days
            as integer
        ), 0) as n_missing_days,
        history_summary.avg_sales_per_open_day,
        history_summary.avg_customers_per_open_day

    from stores
    left join history_summary
        on stores.store_id = history_summary.store_id

)

select * from final
order by store_id
