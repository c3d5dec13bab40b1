-- Stores whose nearest competitor (known distance) opened inside their history: sales before versus
-- after the opening.
--
-- The opening is known only to the month (competition_open_date = first day of that month), so that
-- month is left out: "before" = the 182 days before it, "after" = the 182 days from the first day of
-- the following month. Besides the plain means of open-day sales, each open day's sales are divided
-- by the mean sales of all open stores that day (the chain level), which takes out seasonality and the
-- chain's trend; the change in that relative level is the competitor's effect. A side with fewer than
-- 28 open days leaves the change NULL.

{% set window_days = 182 %}
{% set min_open_days = 28 %}

with

store_days as (

    select * from {{ ref('fct_store_daily_features') }}
    where is_history

),

stores as (

    select * from {{ ref('dim_stores') }}

),

chain_level as (

    select
        sale_date,
        avg(sales) as chain_avg_sales

    from store_days
    where is_open
    group by sale_date

),

openings as (

    select
        store_id,
        store_type,
        assortment,
        competition_distance_m,
        competition_open_date,
        first_history_date,
        last_history_date

    from stores
    where competition_distance_m is not null
        and competition_open_date > first_history_date
        and competition_open_date <= last_history_date

),

windows as (

    select
        openings.store_id,
        case
            when store_days.sale_date < openings.competition_open_date then 'before'
            else 'after'
        end as side,
        store_days.sales,
        store_days.sales / nullif(chain_level.chain_avg_sales, 0) as relative_sales

    from openings
    inner join store_days
        on openings.store_id = store_days.store_id
    inner join chain_level
        on store_days.sale_date = chain_level.sale_date
    where store_days.is_open
        and (
            store_days.sale_date between openings.competition_open_date - {{ window_days }}
                and openings.competition_open_date - 1
            or store_days.sale_date between cast(openings.competition_open_date + interval 1 month as date)
                and cast(openings.competition_open_date + interval 1 month as date) + {{ window_days - 1 }}
        )

),

per_store as (

    select
        store_id,
        cast(count(*) filter (where side = 'before') as integer) as open_days_before,
        cast(count(*) filter (where side = 'after') as integer) as open_days_after,
        avg(sales) filter (where side = 'before') as avg_sales_before,
        avg(sales) filter (where side = 'after') as avg_sales_after,
        avg(relative_sales) filter (where side = 'before') as relative_sales_before,
        avg(relative_sales) filter (where side = 'after') as relative_sales_after

    from windows
    group by store_id

),

final as (

    select
        openings.store_id,
        openings.store_type,
        openings.assortment,
        openings.competition_distance_m,
        openings.competition_open_date,
        coalesce(per_store.open_days_before, 0) as open_days_before,
        coalesce(per_store.open_days_after, 0) as open_days_after,
        per_store.avg_sales_before,
        per_store.avg_sales_after,
        per_store.relative_sales_before,
        per_store.relative_sales_after,
        coalesce(
            per_store.open_days_before >= {{ min_open_days }} and per_store.open_days_after >= {{ min_open_days }},
            false
        ) as is_comparable,
        case
            when per_store.open_days_before >= {{ min_open_days }}
                and per_store.open_days_after >= {{ min_open_days }}
            then 100 * (per_store.avg_sales_after / nullif(per_store.avg_sales_before, 0) - 1)
        end as sales_change_pct,
        case
            when per_store.open_days_before >= {{ min_open_days }}
                and per_store.open_days_after >= {{ min_open_days }}
            then 100 * (per_store.relative_sales_after / nullif(per_store.relative_sales_before, 0) - 1)
        end as relative_sales_change_pct

    from openings
    left join per_store
        on openings.store_id = per_store.store_id

)

select * from final
order by store_id
