-- One cell per store and weekday of the open history days: promo and non-promo sums, and the
-- like-for-like counterfactual -- what the cell's promo days would have sold (and drawn) at the cell's
-- non-promo mean. Only cells with both kinds of day carry a match. The promotion insights roll these
-- cells up (promotions run Monday..Friday only, so comparing within a weekday removes the weekday mix).

with

open_days as (

    select * from {{ ref('fct_store_daily_features') }}
    where is_history and is_open

),

cells as (

    select
        store_id,
        store_type,
        assortment,
        day_of_week,
        count(*) filter (where is_promo) as promo_days,
        count(*) filter (where not is_promo) as non_promo_days,
        sum(sales) filter (where is_promo) as promo_sales,
        sum(sales) filter (where not is_promo) as non_promo_sales,
        sum(customers) filter (where is_promo) as promo_customers,
        sum(customers) filter (where not is_promo) as non_promo_customers

    from open_days
    group by all

),

final as (

    select
        *,
        case when promo_days > 0 and non_promo_days > 0
            then promo_sales end as matched_promo_sales,
        case when promo_days > 0 and non_promo_days > 0
            then promo_days * non_promo_sales / non_promo_days end as counterfactual_sales,
        case when promo_days > 0 and non_promo_days > 0
            then promo_customers end as matched_promo_customers,
        case when promo_days > 0 and non_promo_days > 0
            then promo_days * non_promo_customers / non_promo_days end as counterfactual_customers

    from cells

)

select * from final
