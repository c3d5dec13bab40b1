with

source as (

    select * from {{ source('raw', 'sales') }}

),

renamed as (

    select

        ----------  ids
        cast("Store" as integer) as store_id,
        cast("Date" as date) as sale_date,

        ---------- calendar
        cast("DayOfWeek" as integer) as day_of_week,

        ---------- numerics
        cast("Sales" as integer) as sales,
        cast("Customers" as integer) as customers,

        ---------- booleans
        cast("Open" as boolean) as is_open,
        cast("Promo" as boolean) as is_promo,
        cast("SchoolHoliday" as boolean) as is_school_holiday,

        ---------- text
        cast("StateHoliday" as varchar) as state_holiday

    from source

)

select * from renamed
