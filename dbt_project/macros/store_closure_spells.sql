{#
    Long closures of each store in `store_days` (a relation with store_id, sale_date, is_open;
    one row per store-day): maximal runs of calendar days on which the store is not open,
    counting closed rows AND days without a row inside the store's span of rows (history gaps,
    e.g. refurbishments), that last at least `min_days` days (default
    var('long_closure_min_days')). One row per spell, with the day the store reopened (NULL when
    the spell runs to the store's last row); a spell of at least var('refurbishment_min_days')
    days is a refurbishment. Reads only the open calendar, never sales.
    int_store_closure_spells and store_day_features use it (the latter with min_days = 2 for its
    multi-day closures, filtering the long ones from them).
#}
{% macro store_closure_spells(store_days, min_days=var('long_closure_min_days')) %}

with

spell_days as (

    select
        store_id,
        sale_date,
        is_open
    from {{ store_days }}

),

spell_store_bounds as (

    select
        store_id,
        min(sale_date) as first_date,
        max(sale_date) as last_date,
        max(sale_date) filter (where is_open) as last_open_date
    from spell_days
    group by store_id

),

open_days as (

    select
        spell_days.store_id,
        spell_days.sale_date as reopen_date,
        -- the day after the previous open day (or the store's first row)
        coalesce(
            lag(spell_days.sale_date) over (
                partition by spell_days.store_id order by spell_days.sale_date
            ) + 1,
            spell_store_bounds.first_date
        ) as spell_start

    from spell_days
    inner join spell_store_bounds
        on spell_days.store_id = spell_store_bounds.store_id
    where spell_days.is_open

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
    from spell_store_bounds
    where last_open_date is null or last_open_date < last_date

),

spells as (

    select * from spells_before_open_days
    union all
    select * from trailing_spells

),

spell_counts as (

    select
        spells.store_id,
        spells.spell_start,
        spells.spell_end,
        spells.reopen_date,
        cast(spells.spell_end - spells.spell_start + 1 as integer) as n_days,
        cast(
            spells.spell_end - spells.spell_start + 1 - count(spell_days.sale_date)
            as integer
        ) as n_missing_days

    from spells
    left join spell_days
        on spells.store_id = spell_days.store_id
        and spell_days.sale_date between spells.spell_start and spells.spell_end
    group by spells.store_id, spells.spell_start, spells.spell_end, spells.reopen_date

)

select
    *,
    n_days >= {{ var('refurbishment_min_days') }} as is_refurbishment
from spell_counts
where n_days >= {{ min_days }}

{% endmacro %}
