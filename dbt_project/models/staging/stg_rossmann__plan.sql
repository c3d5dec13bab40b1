with

source as (

    select * from {{ source('raw', 'plan') }}

),

renamed as (

    select

        ----------  ids
        cast("Id" as integer) as plan_id,
        cast("Store" as integer) as store_id,
        cast("Date" as date) as sale_date,

        ---------- calendar
        cast("DayOfWeek" as integer) as day_of_week,

        ---------- booleans (is_open stays NULL when the plan does not say;
        ---------- the marts treat unknown as open)
        cast("Open" as boolean) as is_open,
        cast("Promo" as boolean) as is_promo,
        cast("SchoolHoliday" as boolean) as is_school_holiday,

        ---------- text
        cast("StateHoliday" as varchar) as state_holiday

    from source

)

select * from renamed
