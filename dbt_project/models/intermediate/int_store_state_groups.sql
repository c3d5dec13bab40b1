{{ config(materialized='table') }}

-- One row per store with history: a state group derived from the holiday calendar.
-- The German state of a store is not in the data, but stores in the same state share
-- state-holiday and school-holiday dates. The signature of a store is the ordered list of
-- the dates on which it has a state holiday (state_holiday <> '0') or a school holiday,
-- with the codes, restricted to the COMMON dates: the dates on which every store with
-- history has a row (so history gaps, e.g. the refurbishment gaps of 2014, do not split a
-- state). Stores with the same signature form one group; groups are numbered 1, 2, ... in
-- the order of their smallest store_id (group 1 holds the smallest store number).
-- Only the calendar columns are read (never sales or customers).

with

history as (

    select
        store_id,
        sale_date,
        state_holiday,
        is_school_holiday
    from {{ ref('stg_rossmann__sales') }}

),

n_stores as (

    select count(distinct store_id) as n from history

),

common_dates as (

    select sale_date
    from history
    group by sale_date
    having count(distinct store_id) = (select n from n_stores)

),

signatures as (

    select
        history.store_id,
        count(*) filter (where history.state_holiday <> '0' or history.is_school_holiday)
            as n_holiday_dates,
        md5(coalesce(string_agg(
            case
                when history.state_holiday <> '0' or history.is_school_holiday
                    then strftime(history.sale_date, '%Y%m%d')
                    || history.state_holiday
                    || case when history.is_school_holiday then 'S' else '-' end
            end,
            ',' order by history.sale_date
        ), '')) as holiday_signature

    from history
    semi join common_dates
        on history.sale_date = common_dates.sale_date
    group by history.store_id

),

group_order as (

    select
        holiday_signature,
        min(store_id) as first_store_id,
        count(*) as n_stores_in_group
    from signatures
    group by holiday_signature

),

final as (

    select
        signatures.store_id,
        cast(dense_rank() over (order by group_order.first_store_id) as integer) as state_group,
        cast(group_order.n_stores_in_group as integer) as n_stores_in_group,
        cast(signatures.n_holiday_dates as integer) as n_holiday_dates,
        signatures.holiday_signature

    from signatures
    inner join group_order
        on signatures.holiday_signature = group_order.holiday_signature

)

select * from final
