{{ config(materialized='table') }}

-- Store-independent calendar features for every day of int_calendar (macro calendar_events,
-- the definition the store-day features use too): trend and seasonality terms, and the
-- distance to Christmas (25 December) and Easter Sunday. They use only the date, so they are
-- known for history and plan days alike (no leakage).

{{ calendar_events(
    calendar=ref('int_calendar'),
    first_history_date='(select min(sale_date) from ' ~ ref('stg_rossmann__sales') ~ ')'
) }}
