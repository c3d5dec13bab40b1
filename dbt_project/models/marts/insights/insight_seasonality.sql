-- When in the year and the week do stores sell most? Sales and customers indexes by calendar month,
-- ISO week of the year and weekday (grain / period).
--
-- Each open history day is first divided by its store's mean open-day sales (customers), so stores
-- with more or fewer days in a period (refurbishment gaps, a history that starts mid-year) do not
-- move the index. The index is that relative level averaged over the period, scaled so that the
-- periods of a grain average exactly 100 (100 = an average month / week / weekday).

with

store_days as (

    select * from {{ ref('fct_store_daily_features') }}
    where is_history

),

stores as (

    select * from {{ ref('dim_stores') }}

),

relative as (

    select
        store_days.month,
        store_days.week_of_year,
        store_days.day_of_week,
        store_days.is_open,
        store_days.sales,
        store_days.customers,
        store_days.sales / nullif(stores.avg_sales_per_open_day, 0) as relative_sales,
        store_days.customers / nullif(stores.avg_customers_per_open_day, 0) as relative_customers

    from store_days
    inner join stores
        on store_days.store_id = stores.store_id

),

by_period as (

    select
        case
            when grouping(month) = 0 then 'month'
            when grouping(week_of_year) = 0 then 'week_of_year'
            else 'day_of_week'
        end as grain,
        coalesce(month, week_of_year, day_of_week) as period,
        cast(count(*) as integer) as n_store_days,
        cast(count(*) filter (where is_open) as integer) as n_open_store_days,
        avg(sales) filter (where is_open) as avg_sales_per_open_day,
        avg(customers) filter (where is_open) as avg_customers_per_open_day,
        sum(sales) filter (where is_open) / nullif(sum(customers) filter (where is_open), 0)
            as sales_per_customer,
        avg(relative_sales) filter (where is_open) as relative_sales,
        avg(relative_customers) filter (where is_open) as relative_customers

    from relative
    group by grouping sets ((month), (week_of_year), (day_of_week))

),

final as (

    select
        grain,
        period,
        case grain
            when 'month' then
                ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'][period]
            when 'week_of_year' then 'W' || lpad(cast(period as varchar), 2, '0')
            else ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'][period]
        end as period_label,
        n_store_days,
        n_open_store_days,
        n_open_store_days / nullif(n_store_days, 0) as open_share,
        avg_sales_per_open_day,
        avg_customers_per_open_day,
        sales_per_customer,
        100 * relative_sales / nullif(avg(relative_sales) over (partition by grain), 0) as sales_index,
        100 * relative_customers / nullif(avg(relative_customers) over (partition by grain), 0)
            as customers_index

    from by_period

)

select * from final
order by
    case grain when 'month' then 1 when 'week_of_year' then 2 else 3 end,
    period
