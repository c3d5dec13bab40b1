with

source as (

    select * from {{ source('raw', 'stores') }}

),

renamed as (

    select

        ----------  ids
        cast("Store" as integer) as store_id,

        ---------- text (the literal string 'NULL' of store.csv and blanks mean missing)
        cast(nullif(nullif(trim("StoreType"), ''), 'NULL') as varchar) as store_type,
        cast(nullif(nullif(trim("Assortment"), ''), 'NULL') as varchar) as assortment,
        cast(nullif(nullif(trim("PromoInterval"), ''), 'NULL') as varchar) as promo_interval,

        ---------- numerics
        cast("CompetitionDistance" as double) as competition_distance_m,
        cast("CompetitionOpenSinceMonth" as integer) as competition_open_since_month,
        cast("CompetitionOpenSinceYear" as integer) as competition_open_since_year,
        cast("Promo2SinceWeek" as integer) as promo2_since_week,
        cast("Promo2SinceYear" as integer) as promo2_since_year,

        ---------- booleans
        cast("Promo2" as boolean) as is_in_promo2

    from source

)

select * from renamed
