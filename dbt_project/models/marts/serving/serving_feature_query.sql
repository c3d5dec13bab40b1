-- The SQL that POST /predict runs (serving.features.build_feature_rows): the macro
-- store_day_features, compiled for requested store-days, so served features are the mart's.
-- The API reads it from the published copy (marts and ml only, no macros: hence the text) and
-- runs it with its request rows registered as `request_relation`; the SQL reads the copy's
-- marts.fct_store_daily_features and marts.dim_stores (schema-qualified, no database name).
--
-- The requested store-days are evaluated together with the mart's rows of their stores around
-- them, a requested row replacing the mart's row of the same store-day, as the mart was built
-- (runs and distances read the neighbours; an unchanged row comes out as in the mart).
-- Requested days outside the mart extend the store's timeline the same way (days between the
-- mart and a requested day have no rows, like a history gap). Each store-day must be requested
-- at most once per run.
--
-- Around them = every row a requested day's features can depend on, so the result equals the
-- whole timeline's: the reach of the capped distances, school-holiday weeks and long closures
-- (a reopening within event_distance_cap_days after a closure of long_closure_min_days, a
-- refurbishment of refurbishment_min_days within after_refurbishment_days) back and ahead,
-- widened to the mart's nearest row beyond each bound (a history gap across a bound is seen
-- whole), back to the start of a promo or school-holiday run in progress at the first row and
-- ahead to the end of a school-holiday run in progress at the last row (runs have no cap; the
-- mart's run day and run length say where the run began and ends).

{%- set request_relation = '__predict_request' %}
{%- set mart = ref('fct_store_daily_features').include(database=False) %}
{#- 14: the ISO week before / after a day starts within 13 days of it -#}
{%- set closure_reach = var('event_distance_cap_days') + var('long_closure_min_days') %}
{%- set days_back = [var('distance_cap_days'), 14, closure_reach,
                     var('after_refurbishment_days') + var('refurbishment_min_days')] | max %}
{%- set days_ahead = [var('distance_cap_days'), 14, closure_reach] | max %}

{%- set feature_sql %}
with

request_rows as (

    select
        cast(row_idx as bigint) as row_idx,
        cast(store_id as integer) as store_id,
        cast(sale_date as date) as sale_date,
        -- unknown Open counts as open (as on plan rows)
        coalesce(cast(is_open as boolean), true) as is_open,
        coalesce(cast(is_promo as boolean), false) as is_promo,
        case
            when cast(state_holiday as varchar) in ('a', 'b', 'c') then cast(state_holiday as varchar)
            else '0'
        end as state_holiday,
        coalesce(cast(is_school_holiday as boolean), false) as is_school_holiday
    from {{ request_relation }}

),

request_stores as (

    select
        store_id,
        min(sale_date) - {{ days_back }} as reach_start,
        max(sale_date) + {{ days_ahead }} as reach_end
    from request_rows
    group by store_id

),

store_rows as (

    select
        mart.store_id,
        mart.sale_date,
        mart.is_history,
        mart.row_source,
        mart.sales,
        mart.customers,
        mart.is_open,
        mart.is_promo,
        mart.state_holiday,
        mart.is_school_holiday,
        mart.promo_run_day,
        mart.school_holiday_run_day,
        mart.school_holiday_run_length,
        mart.state_group
    from {{ mart }} as mart
    semi join request_stores
        on mart.store_id = request_stores.store_id

),

store_windows as (

    select
        request_stores.store_id,
        coalesce(
            first_row.sale_date
            - greatest(first_row.promo_run_day, first_row.school_holiday_run_day, 1) + 1,
            request_stores.reach_start
        ) as window_start,
        coalesce(
            last_row.sale_date
            + last_row.school_holiday_run_length - last_row.school_holiday_run_day,
            request_stores.reach_end
        ) as window_end
    from request_stores
    -- the last row on or before the reach, the first on or after it
    asof left join store_rows as first_row
        on request_stores.store_id = first_row.store_id
        and request_stores.reach_start >= first_row.sale_date
    asof left join store_rows as last_row
        on request_stores.store_id = last_row.store_id
        and request_stores.reach_end <= last_row.sale_date

),

request_timeline as (

    select
        store_id,
        sale_date,
        false as is_history,
        'request' as row_source,
        cast(null as double) as sales,
        cast(null as double) as customers,
        is_open,
        is_promo,
        state_holiday,
        is_school_holiday
    from request_rows

    union all by name

    select mart.* exclude (
        promo_run_day, school_holiday_run_day, school_holiday_run_length, state_group
    )
    from store_rows as mart
    inner join store_windows
        on mart.store_id = store_windows.store_id
        and mart.sale_date between store_windows.window_start and store_windows.window_end
    anti join request_rows
        on mart.store_id = request_rows.store_id
        and mart.sale_date = request_rows.sale_date

),

request_state_groups as (

    -- a store attribute, the same on every row of the store
    select
        store_id,
        any_value(state_group) as state_group
    from store_rows
    group by store_id

),

request_features as (

    {{ store_day_features(
        store_days='request_timeline',
        stores=ref('dim_stores').include(database=False),
        state_groups='request_state_groups',
        first_history_date='(select min(sale_date) from ' ~ mart ~ ' where is_history)'
    ) }}

)

select
    request_rows.row_idx,
    request_features.*
from request_rows
inner join request_features
    on request_rows.store_id = request_features.store_id
    and request_rows.sale_date = request_features.sale_date
order by request_rows.row_idx
{%- endset %}

select
    '{{ request_relation }}' as request_relation,
    '{{ feature_sql | replace("'", "''") }}' as feature_sql
