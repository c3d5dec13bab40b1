-- The SQL that POST /predict runs (serving.features.build_feature_rows): the macro
-- store_day_features, compiled for requested store-days, so served features are the mart's.
-- The API reads it from the published copy (marts and ml only, no macros: hence the text) and
-- runs it with its request rows registered as `request_relation`; the SQL reads the copy's
-- marts.fct_store_daily_features and marts.dim_stores (schema-qualified, no database name).
--
-- The requested store-days are evaluated together with EVERY mart row of their stores, a
-- requested row replacing the mart's row of the same store-day, exactly as the mart was built
-- (runs and distances read the neighbours; an unchanged row comes out as in the mart).
-- Requested days outside the mart extend the store's timeline the same way (days between the
-- mart and a requested day have no rows, like a history gap). Each store-day must be requested
-- at most once per run.

{%- set request_relation = '__predict_request' %}
{%- set mart = ref('fct_store_daily_features').include(database=False) %}

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

    select distinct store_id from request_rows

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

    union all

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
        mart.is_school_holiday
    from {{ mart }} as mart
    semi join request_stores
        on mart.store_id = request_stores.store_id
    anti join request_rows
        on mart.store_id = request_rows.store_id
        and mart.sale_date = request_rows.sale_date

),

request_state_groups as (

    -- a store attribute, the same on every row of the store
    select
        mart.store_id,
        any_value(mart.state_group) as state_group
    from {{ mart }} as mart
    semi join request_stores
        on mart.store_id = request_stores.store_id
    group by mart.store_id

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
