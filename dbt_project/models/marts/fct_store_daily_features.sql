-- The feature table the forecasting models and the data-quality suites read:
-- one row per store-day of history (is_history) and of the forecast horizon's plan.
-- Column order is part of the shared contract (enforced by the model contract in YAML).

with

features as (

    select * from {{ ref('int_store_day_features') }}

),

event_features as (

    select * from {{ ref('int_store_day_event_features') }}

),

final as (

    select
        features.store_id,
        features.sale_date,
        features.is_history,
        features.sales,
        features.customers,
        features.is_open,
        features.is_promo,
        features.state_holiday,
        features.is_state_holiday,
        features.is_school_holiday,
        features.day_of_week,
        features.day_of_month,
        features.month,
        features.year,
        features.week_of_year,
        features.day_of_year,
        features.store_type,
        features.assortment,
        features.competition_distance_m,
        features.is_competition_open,
        features.months_since_competition_open,
        features.is_promo2_active,
        features.is_promo2_month,
        features.days_since_state_holiday,
        features.days_until_state_holiday,
        features.days_since_closed,
        features.days_until_closed,
        -- additions after the contract's columns
        features.row_source,
        -- leakage-free calendar / event features (int_store_day_event_features)
        event_features.promo_run_day,
        event_features.is_promo_first_day,
        event_features.is_promo_last_day,
        event_features.days_since_promo,
        event_features.days_until_promo,
        event_features.days_until_christmas,
        event_features.days_since_christmas,
        event_features.days_until_easter,
        event_features.days_since_easter,
        event_features.is_school_holiday_week,
        event_features.school_holiday_last_week,
        event_features.school_holiday_next_week,
        event_features.school_holiday_run_day,
        event_features.days_since_reopening,
        event_features.days_until_long_closure,
        event_features.is_after_refurbishment,
        event_features.competition_open_months_capped,
        event_features.months_since_promo2_start,
        event_features.promo2_cycle_month,
        event_features.days_since_start,
        event_features.day_of_year_sin,
        event_features.day_of_year_cos,
        event_features.week_of_month,
        event_features.state_group

    from features
    inner join event_features
        on features.store_id = event_features.store_id
        and features.sale_date = event_features.sale_date

)

select * from final
order by store_id, sale_date
