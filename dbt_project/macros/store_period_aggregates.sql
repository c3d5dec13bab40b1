{#
    Sales and customer aggregates of the history per store and calendar period, over the days
    that have history rows (missing days are not filled). One definition for agg_store_monthly
    and agg_store_weekly.
      period_start  the int_calendar column that starts the period (month_start, week_start)
      extra_columns further int_calendar columns that label the period (grouped by and
                    returned before n_days)
#}
{% macro store_period_aggregates(period_start, extra_columns=[]) %}

with

history as (

    select * from {{ ref('stg_rossmann__sales') }}

),

calendar as (

    select * from {{ ref('int_calendar') }}

),

aggregated as (

    select
        history.store_id,
        calendar.{{ period_start }},
        {%- for column in extra_columns %}
        calendar.{{ column }},
        {%- endfor %}
        sum(cast(history.sales as double)) as sales,
        sum(cast(history.customers as double)) as customers,
        sum(cast(history.sales as double)) filter (where history.is_open) as open_day_sales,
        sum(cast(history.customers as double)) filter (where history.is_open) as open_day_customers,
        cast(count(*) filter (where history.is_open) as integer) as open_days,
        cast(count(*) filter (where history.is_promo) as integer) as promo_days,
        cast(count(*) as integer) as n_days,
        cast(count(*) filter (where history.state_holiday <> '0') as integer) as state_holiday_days,
        cast(count(*) filter (where history.is_school_holiday) as integer) as school_holiday_days

    from history
    inner join calendar
        on history.sale_date = calendar.calendar_date
    group by all

),

final as (

    select
        store_id,
        {{ period_start }},
        sales,
        customers,
        sales / nullif(customers, 0) as sales_per_customer,
        open_days,
        promo_days,
        open_day_sales / nullif(open_days, 0) as avg_sales_per_open_day,
        open_day_customers / nullif(open_days, 0) as avg_customers_per_open_day,
        {%- for column in extra_columns %}
        {{ column }},
        {%- endfor %}
        n_days,
        state_holiday_days,
        school_holiday_days

    from aggregated

)

select * from final
order by store_id, {{ period_start }}

{% endmacro %}
