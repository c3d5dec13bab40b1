-- Which stores gain most from a promotion day? Per store: open history days with versus without the
-- promotion, and the like-for-like uplift (each promo day against the store's own non-promo mean on
-- the same weekday), ranked from the biggest gain (rank 1).

with

cells as (

    select * from {{ ref('int_store_weekday_promo_cells') }}

),

per_store as (

    select
        store_id,
        cast(sum(promo_days) as integer) as promo_days,
        cast(sum(non_promo_days) as integer) as non_promo_days,
        sum(promo_sales) / nullif(sum(promo_days), 0) as avg_sales_promo,
        sum(non_promo_sales) / nullif(sum(non_promo_days), 0) as avg_sales_non_promo,
        sum(promo_customers) / nullif(sum(promo_days), 0) as avg_customers_promo,
        sum(non_promo_customers) / nullif(sum(non_promo_days), 0) as avg_customers_non_promo,
        sum(matched_promo_sales) / nullif(sum(counterfactual_sales), 0) as like_for_like_sales_ratio,
        sum(matched_promo_customers) / nullif(sum(counterfactual_customers), 0) as like_for_like_customers_ratio

    from cells
    group by store_id

),

stores as (

    select * from {{ ref('dim_stores') }}

),

final as (

    select
        per_store.store_id,
        stores.store_type,
        stores.assortment,
        per_store.promo_days,
        per_store.non_promo_days,
        per_store.avg_sales_promo,
        per_store.avg_sales_non_promo,
        100 * (per_store.avg_sales_promo / nullif(per_store.avg_sales_non_promo, 0) - 1) as sales_uplift_pct,
        per_store.avg_customers_promo,
        per_store.avg_customers_non_promo,
        100 * (per_store.avg_customers_promo / nullif(per_store.avg_customers_non_promo, 0) - 1)
            as customers_uplift_pct,
        100 * (per_store.like_for_like_sales_ratio - 1) as like_for_like_sales_uplift_pct,
        100 * (per_store.like_for_like_customers_ratio - 1) as like_for_like_customers_uplift_pct,
        cast(case when per_store.like_for_like_sales_ratio is not null then rank() over (
            order by per_store.like_for_like_sales_ratio desc nulls last
        ) end as integer) as uplift_rank,
        cast(case when per_store.like_for_like_sales_ratio is not null then rank() over (
            partition by stores.store_type
            order by per_store.like_for_like_sales_ratio desc nulls last
        ) end as integer) as uplift_rank_in_store_type

    from per_store
    inner join stores
        on per_store.store_id = stores.store_id

)

select * from final
order by uplift_rank nulls last, store_id
