-- The feature table the forecasting models and the data-quality suites read:
-- one row per store-day of history (is_history) and of the forecast horizon's plan.
-- Column order is part of the shared contract (enforced by the model contract in YAML).
-- Every feature is defined once, in the macro store_day_features; POST /predict runs the same
-- macro (marts.serving_feature_query) for store-days inside and outside this table.

{{ store_day_features(
    store_days=ref('int_store_days'),
    stores=ref('int_stores_enriched'),
    state_groups=ref('int_store_state_groups'),
    first_history_date='(select min(sale_date) from ' ~ ref('stg_rossmann__sales') ~ ')'
) }}
order by store_id, sale_date
