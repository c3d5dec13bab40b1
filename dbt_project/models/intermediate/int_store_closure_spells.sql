{{ config(materialized='table') }}

-- Long closures of each store: maximal runs of calendar days on which the store is not open,
-- counting both closed rows (is_open false) and days WITHOUT a row inside the store's span of
-- history and plan rows (history gaps, e.g. refurbishments), that last at least
-- {{ var('long_closure_min_days') }} days. One row per spell, with the day the store reopened
-- (NULL when the spell runs to the store's last row). A spell of at least
-- {{ var('refurbishment_min_days') }} days is a refurbishment. Uses only the open calendar of
-- history and plan rows (never sales).

with

store_days as (

    select
        store_id,
        sale_date,
        is_open
    from {{ ref('int_store_days') }}

),

store_bounds as (

    select
        store_id,
        min(sale_date) as first_date,
        max(sale_date) as last_date,
        max(sale_date) filter (where is_open) as last_open_date
    from store_days
    group by store_id

),

open_days as (

    select
        store_days.store_id,
        store_days.sale_date as reopen_date,
        -- the day after the previous open day (or the store's first row)
        coalesce(
            lag(store_days.sale_date) over (
                partition by store_days.store_id order by store_days.sale_date
            ) + 1,
            store_bounds.first_date
        ) as spell_start

    from store_days
    inner join store_bounds
        on store_days.store_id = store_bounds.store_id
    where store_days.is_open

),

spells_before_open_days as (

    select
        store_id,
        spell_start,
        reopen_date - 1 as spell_end,
        reopen_date
    from open_days
    where reopen_date > spell_start

),

trailing_spells as (

    -- not open from the day after the last open day (or from the first row when the store
    -- never opens) to the store's last row: no reopening known yet
    select
        store_id,
        coalesce(last_open_date + 1, first_date) as spell_start,
        last_date as spell_end,
        cast(null as date) as reopen_date
    from store_bounds
    where last_open_date is null or last_open_date < last_date

),

spells as (

    select * from spells_before_open_days
    union all
    select * from trailing_spells

),

with_counts as (

    select
        spells.store_id,
        spells.spell_start,
        spells.spell_end,
        spells.reopen_date,
        cast(spells.spell_end - spells.spell_start + 1 as integer) as n_days,
        cast(
            spells.spell_end - spells.spell_start + 1 - count(store_days.sale_date)
            as integer
        ) as n_missing_days

    from spells
    left join store_days
        on spells.store_id = store_days.store_id
        and store_days.sale_date between spells.spell_start and spells.spell_end
    group by spells.store_id, spells.spell_start, spells.spell_end, spells.reopen_date

),

final as (

    select
        *,
        n_days >= {{ var('refurbishment_min_days') }} as is_refurbishment
    from with_counts
    where n_days >= {{ var('long_closure_min_days') }}

)

select * from final
