-- Forecast quality over time: ml.model_metrics pivoted to one row per model, version and split,
-- dated by the registry's trained_at (versions missing from the registry by their metrics'
-- created_at), numbered per model in training order, with the change in RMSPE against the
-- model's previous version, the model family's best version flagged and the latest version
-- as dim_model_versions defines it.

with

metrics as (

    select * from {{ source('ml', 'model_metrics') }}

),

registry as (

    select * from {{ source('ml', 'model_registry') }}

),

model_versions as (

    select * from {{ ref('dim_model_versions') }}

),

registered_versions as (

    select
        model,
        model_version,
        max(trained_at) as trained_at,
        min(train_start) as train_start,
        max(train_end) as train_end,
        max(n_train_rows) as n_train_rows

    from registry
    group by all

),

pivoted as (

    select
        model,
        model_version,
        split,
        max(created_at) as evaluated_at,
        max(value) filter (where metric = 'rmspe') as rmspe,
        max(value) filter (where metric = 'rmse') as rmse,
        max(value) filter (where metric = 'mae') as mae,
        max(value) filter (where metric = 'mape') as mape

    from metrics
    group by all

),

joined as (

    select
        pivoted.model,
        pivoted.model_version,
        pivoted.split,
        registered_versions.trained_at,
        coalesce(registered_versions.trained_at, pivoted.evaluated_at) as version_time,
        registered_versions.train_start,
        registered_versions.train_end,
        registered_versions.n_train_rows,
        pivoted.evaluated_at,
        pivoted.rmspe,
        pivoted.rmse,
        pivoted.mae,
        pivoted.mape,
        coalesce(model_versions.is_latest, false) as is_latest_version

    from pivoted
    left join registered_versions
        on pivoted.model = registered_versions.model
        and pivoted.model_version = registered_versions.model_version
    left join model_versions
        on pivoted.model = model_versions.model
        and pivoted.model_version = model_versions.model_version

),

ordered as (

    select
        *,
        row_number() over (
            partition by model, split order by version_time, model_version
        ) as version_number,
        lag(rmspe) over (
            partition by model, split order by version_time, model_version
        ) as previous_rmspe,
        min(rmspe) over (partition by model, split) as best_rmspe

    from joined

),

final as (

    select
        model,
        model_version,
        split,
        trained_at,
        train_start,
        train_end,
        n_train_rows,
        evaluated_at,
        rmspe,
        rmse,
        mae,
        mape,
        cast(version_number as integer) as version_number,
        is_latest_version,
        previous_rmspe,
        rmspe - previous_rmspe as rmspe_change,
        coalesce(rmspe = best_rmspe, false) as is_best_rmspe

    from ordered

)

select * from final
order by model, split, version_number
