-- Store attributes plus the dates derived from them: when the nearest competitor
-- opened and when the store's Promo2 participation started (Monday of the ISO week).

with

stores as (

    select * from {{ ref('stg_rossmann__stores') }}

),

enriched as (

    select
        store_id,
        store_type,
        assortment,
        competition_distance_m,
        competition_open_since_month,
        competition_open_since_year,
        case
            when competition_open_since_year is not null
                and competition_open_since_month between 1 and 12
                then make_date(competition_open_since_year, competition_open_since_month, 1)
        end as competition_open_date,
        is_in_promo2,
        promo2_since_week,
        promo2_since_year,
        case
            when is_in_promo2
                and promo2_since_year is not null
                and promo2_since_week between 1 and 53
                -- Monday of ISO week 1 is the Monday on or before 4 January
                then make_date(promo2_since_year, 1, 4)
                    - cast(isodow(make_date(promo2_since_year, 1, 4)) - 1 as integer)
                    + 7 * (promo2_since_week - 1)
        end as promo2_start_date,
        promo_interval

    from stores

)

select * from enriched
