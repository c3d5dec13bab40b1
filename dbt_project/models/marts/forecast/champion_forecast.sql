-- ml.champion_forecast: the served forecast of the champion (marts.dim_model_versions.is_champion):
-- its rows of the version's latest origin, with the columns of ml.store_sales_forecast. A view in schema `ml` beside the write-back tables,
-- where SQL users and BI tools have always found it; the published copy materialises it.

{{ config(materialized='view', schema='ml') }}

with

forecasts as (

    select * from {{ source('ml', 'store_sales_forecast') }}

),

champion as (

    select
        model,
        model_version,
        latest_origin_date

    from {{ ref('dim_model_versions') }}
    where is_champion

),

final as (

    select
        forecasts.store_id,
        forecasts.forecast_date,
        forecasts.model,
        forecasts.model_version,
        forecasts.origin_date,
        forecasts.sales_pred,
        forecasts.sales_lower,
        forecasts.sales_upper,
        forecasts.customers_pred,
        forecasts.created_at

    from forecasts
    inner join champion
        on forecasts.model = champion.model
        and forecasts.model_version = champion.model_version
        and forecasts.origin_date = champion.latest_origin_date

)

select * from final
