-- One row per trained model version of ml.model_registry, with its scores, and the platform's one
-- definition of a model's latest version and of the champion. The API, the dashboard,
-- ml.champion_forecast and the forecast marts all read these flags instead of re-deriving them.
--
-- latest:   per model, the most recently trained version (trained_at, then model_version) among
--           the versions that have forecasts.
-- champion: among the latest versions, the lowest mean RMSPE over the validation fold and the
--           backtest folds (split = 'validation' or 'backtest_<n>'); ties go to the model name.
--           A latest version without any RMSPE ranks after every scored one.

with

registry as (

    select * from {{ source('ml', 'model_registry') }}

),

metrics as (

    select * from {{ source('ml', 'model_metrics') }}

),

forecasts as (

    select * from {{ source('ml', 'store_sales_forecast') }}

),

forecast_versions as (

    select
        model,
        model_version,
        count(*) as n_forecast_rows

    from forecasts
    group by all

),

scores as (

    select
        model,
        model_version,
        max(value) filter (where split = 'validation') as validation_rmspe,
        avg(value) as mean_rmspe,
        count(*) as n_scored_folds

    from metrics
    where
        metric = 'rmspe'
        and value is not null
        and (split = 'validation' or regexp_matches(split, '^backtest_[0-9]+$'))
    group by all

),

-- the level of the version's prediction interval, from the name of its coverage metric (coverage_80 -> 0.8)
interval_levels as (

    select
        model,
        model_version,
        max(cast(regexp_extract(metric, '^coverage_([0-9]+)$', 1) as double)) / 100 as interval_level

    from metrics
    where regexp_matches(metric, '^coverage_[0-9]+$')
    group by all

),

versions as (

    select
        registry.model,
        registry.model_version,
        registry.trained_at,
        registry.train_start,
        registry.train_end,
        forecast_versions.model_version is not null as has_forecasts,
        coalesce(forecast_versions.n_forecast_rows, 0) as n_forecast_rows,
        scores.validation_rmspe,
        scores.mean_rmspe,
        coalesce(scores.n_scored_folds, 0) as n_scored_folds,
        interval_levels.interval_level

    from registry
    left join forecast_versions
        on registry.model = forecast_versions.model
        and registry.model_version = forecast_versions.model_version
    left join scores
        on registry.model = scores.model
        and registry.model_version = scores.model_version
    left join interval_levels
        on registry.model = interval_levels.model
        and registry.model_version = interval_levels.model_version

),

flagged_latest as (

    select
        *,
        has_forecasts and row_number() over (
            partition by model, has_forecasts
            order by trained_at desc, model_version desc
        ) = 1 as is_latest,
        row_number() over (
            partition by model
            order by trained_at desc, model_version desc
        ) = 1 as is_latest_trained

    from versions

),

ranked as (

    select
        *,
        case
            when is_latest then row_number() over (
                partition by is_latest
                order by mean_rmspe asc nulls last, model
            )
        end as rank

    from flagged_latest

),

final as (

    select
        model,
        model_version,
        trained_at,
        train_start,
        train_end,
        has_forecasts,
        n_forecast_rows,
        validation_rmspe,
        mean_rmspe,
        n_scored_folds,
        interval_level,
        cast(rank as integer) as rank,
        is_latest,
        is_latest_trained,
        coalesce(rank = 1, false) as is_champion,
        'mean_rmspe' as champion_metric,
        'lowest mean_rmspe' as champion_reason

    from ranked

)

select * from final
order by model, trained_at, model_version
