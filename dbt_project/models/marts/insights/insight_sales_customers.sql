-- How closely do sales follow customers? Correlation of daily sales and customers over open history
-- days (closed days, 0 / 0, would inflate it), overall, per store type and per store, with the
-- marginal sales per extra customer (regression slope) and the distribution of daily sales per
-- customer (open days with customers) as percentiles.

with

open_days as (

    select
        store_id,
        store_type,
        sales,
        customers,
        sales / nullif(customers, 0) as sales_per_customer

    from {{ ref('fct_store_daily_features') }}
    where is_history and is_open

),

aggregated as (

    select
        case
            when grouping(store_type) = 1 then 'all'
            when grouping(store_id) = 1 then 'store_type'
            else 'store'
        end as grain,
        coalesce(store_type, 'all') as store_type,
        store_id,
        cast(count(distinct store_id) as integer) as n_stores,
        cast(count(*) as integer) as n_open_days,
        avg(sales) as avg_sales,
        avg(customers) as avg_customers,
        corr(sales, customers) as corr_sales_customers,
        regr_slope(sales, customers) as sales_per_extra_customer,
        sum(sales) / nullif(sum(customers), 0) as sales_per_customer,
        quantile_cont(sales_per_customer, [0.05, 0.25, 0.5, 0.75, 0.95]) as spc_quantiles

    from open_days
    group by grouping sets ((), (store_type), (store_type, store_id))

),

final as (

    select
        grain,
        store_type,
        store_id,
        n_stores,
        n_open_days,
        avg_sales,
        avg_customers,
        -- NULL (not NaN) when a group has no variance
        case when isnan(corr_sales_customers) then null else corr_sales_customers end
            as corr_sales_customers,
        sales_per_extra_customer,
        sales_per_customer,
        spc_quantiles[1] as sales_per_customer_p05,
        spc_quantiles[2] as sales_per_customer_p25,
        spc_quantiles[3] as sales_per_customer_p50,
        spc_quantiles[4] as sales_per_customer_p75,
        spc_quantiles[5] as sales_per_customer_p95

    from aggregated

)

select * from final
order by
    case grain when 'all' then 0 when 'store_type' then 1 else 2 end,
    store_type,
    store_id
