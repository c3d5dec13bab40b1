-- What does a promotion day do to sales, customers and the basket (sales per customer)?
-- Open history days with versus without the (short-term) promotion, overall, per store type and per
-- store type x assortment. Two uplifts: the plain one (mean of promo days vs mean of non-promo days)
-- and the like-for-like one, which compares each promo day with the same store's non-promo mean on
-- the same weekday (promotions run Monday..Friday only, so the plain uplift mixes in the weekday mix).

with

-- one cell per store and weekday: promo and non-promo sums and the like-for-like counterfactual
cells_counterfactual as (

    select * from {{ ref('int_store_weekday_promo_cells') }}

),

aggregated as (

    select
        case
            when grouping(store_type) = 1 then 'all'
            when grouping(assortment) = 1 then 'store_type'
            else 'store_type_assortment'
        end as grain,
        coalesce(store_type, 'all') as store_type,
        coalesce(assortment, 'all') as assortment,
        cast(count(distinct store_id) as integer) as n_stores,
        cast(sum(promo_days) as integer) as promo_days,
        cast(sum(non_promo_days) as integer) as non_promo_days,
        sum(promo_sales) as promo_sales,
        sum(non_promo_sales) as non_promo_sales,
        sum(promo_customers) as promo_customers,
        sum(non_promo_customers) as non_promo_customers,
        sum(matched_promo_sales) as matched_promo_sales,
        sum(counterfactual_sales) as counterfactual_sales,
        sum(matched_promo_customers) as matched_promo_customers,
        sum(counterfactual_customers) as counterfactual_customers

    from cells_counterfactual
    group by grouping sets ((), (store_type), (store_type, assortment))

),

means as (

    select
        grain,
        store_type,
        assortment,
        n_stores,
        promo_days,
        non_promo_days,
        promo_sales / nullif(promo_days, 0) as avg_sales_promo,
        non_promo_sales / nullif(non_promo_days, 0) as avg_sales_non_promo,
        promo_customers / nullif(promo_days, 0) as avg_customers_promo,
        non_promo_customers / nullif(non_promo_days, 0) as avg_customers_non_promo,
        promo_sales / nullif(promo_customers, 0) as sales_per_customer_promo,
        non_promo_sales / nullif(non_promo_customers, 0) as sales_per_customer_non_promo,
        matched_promo_sales / nullif(counterfactual_sales, 0) as like_for_like_sales_ratio,
        matched_promo_customers / nullif(counterfactual_customers, 0) as like_for_like_customers_ratio

    from aggregated

),

final as (

    select
        grain,
        store_type,
        assortment,
        n_stores,
        promo_days,
        non_promo_days,
        avg_sales_promo,
        avg_sales_non_promo,
        100 * (avg_sales_promo / nullif(avg_sales_non_promo, 0) - 1) as sales_uplift_pct,
        avg_customers_promo,
        avg_customers_non_promo,
        100 * (avg_customers_promo / nullif(avg_customers_non_promo, 0) - 1) as customers_uplift_pct,
        sales_per_customer_promo,
        sales_per_customer_non_promo,
        100 * (sales_per_customer_promo / nullif(sales_per_customer_non_promo, 0) - 1)
            as sales_per_customer_uplift_pct,
        100 * (like_for_like_sales_ratio - 1) as like_for_like_sales_uplift_pct,
        100 * (like_for_like_customers_ratio - 1) as like_for_like_customers_uplift_pct

    from means

)

select * from final
order by
    case grain when 'all' then 0 when 'store_type' then 1 else 2 end,
    store_type,
    assortment
