-- The feature table the forecasting models and the data-quality suites read:
-- one row per store-day of history (is_history) and of the forecast horizon's plan.
-- Column order is part of the shared contract (enforced by the model contract in YAML).

with

features as (

    select * from {{ ref('int_store_day_features') }}

),

final as (

    select
        store_id,
        sale_date,
        is_history,
        sales,
        customers,
        is_open,
        is_promo,
        state_holiday,
        is_state_holiday,
        is_school_holiday,
        day_of_week,
        day_of_month,
        month,
        year,
        week_of_year,
        day_of_year,
        store_type,
        assortment,
        competition_distance_m,
        is_competition_open,
        months_since_competition_open,
        is_promo2_active,
        is_promo2_month,
        days_since_state_holiday,
        days_until_state_holiday,
        days_since_closed,
        days_until_closed,
        -- additions after the contract's columns
        row_source

    from features

)

select * from final
order by store_id, sale_date
