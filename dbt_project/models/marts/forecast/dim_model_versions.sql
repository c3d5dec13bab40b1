-- One row per trained model version of ml.model_registry, with its scores, and the platform's one
-- definition of a model's latest version and of the champion. The API, the dashboard,
-- ml.champion_forecast and the forecast marts all read these flags instead of re-deriving them.
--
-- latest:   per model, the most recently trained version (trained_at, then model_version) among
--           the versions that have forecasts.
-- latest origin: per version, the latest origin_date of its forecasts; "the served forecast" is
--           the latest origin of a version, everywhere (marts, API, dashboard).
-- champion: the version pinned in ml.champion_pins when it is registered and has forecasts;
--           otherwise, among the latest versions, the lowest weighted_rmspe: the mean RMSPE over
--           the validation fold and the backtest folds (split = 'validation' or 'backtest_<n>'),
--           each fold weighted 0.5 ^ (age / var champion_half_life_folds), age 0 for the
--           validation fold, 1 for the backtest before it, ... (the latest folds resemble the
--           forecast best: bench/README.md, "Champion rule"; forecasting.folds.ForecastSpec.
--           recency_weights gives the blend's fit the same weights). Ties go to the model name.
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

pins as (

    select * from {{ source('ml', 'champion_pins') }}

),

-- at most one row by contract; should there be more, the latest pin counts
current_pin as (

    select
        model,
        model_version

    from pins
    qualify row_number() over (order by pinned_at desc, model_version desc) = 1

),

forecast_origins as (

    select
        model,
        model_version,
        origin_date,
        count(*) as n_rows

    from forecasts
    group by all

),

forecast_versions as (

    select
        model,
        model_version,
        max(origin_date) as latest_origin_date,
        count(*) as n_origins,
        arg_max(n_rows, origin_date) as n_forecast_rows

    from forecast_origins
    group by all

),

fold_rmspe as (

    select
        model,
        model_version,
        split,
        value,
        cast(nullif(regexp_extract(split, '^backtest_([0-9]+)$', 1), '') as integer) as backtest_number

    from metrics
    where
        metric = 'rmspe'
        and (split = 'validation' or regexp_matches(split, '^backtest_[0-9]+$'))

),

-- folds counted back from the validation fold (0); backtest_1 is the oldest, so backtest_<n> is
-- (number of backtests + 1 - n) folds old
fold_ages as (

    select
        *,
        coalesce(
            max(backtest_number) over (partition by model, model_version) + 1 - backtest_number, 0
        ) as fold_age

    from fold_rmspe

),

scores as (

    select
        model,
        model_version,
        max(value) filter (where split = 'validation') as validation_rmspe,
        avg(value) as mean_rmspe,
        sum(value * pow(0.5, fold_age / {{ var('champion_half_life_folds') }}))
        / sum(pow(0.5, fold_age / {{ var('champion_half_life_folds') }})) as weighted_rmspe,
        count(*) as n_scored_folds

    from fold_ages
    where value is not null
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
        forecast_versions.latest_origin_date,
        coalesce(forecast_versions.n_origins, 0) as n_origins,
        scores.validation_rmspe,
        scores.mean_rmspe,
        scores.weighted_rmspe,
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
                order by weighted_rmspe asc nulls last, model
            )
        end as rank

    from flagged_latest

),

pinned as (

    select
        ranked.*,
        current_pin.model_version is not null as is_pinned,
        -- a pin counts when it names a registered version with forecasts
        bool_or(current_pin.model_version is not null and ranked.has_forecasts) over () as has_valid_pin

    from ranked
    left join current_pin
        on ranked.model = current_pin.model
        and ranked.model_version = current_pin.model_version

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
        latest_origin_date,
        cast(n_origins as integer) as n_origins,
        validation_rmspe,
        mean_rmspe,
        weighted_rmspe,
        n_scored_folds,
        interval_level,
        cast(rank as integer) as rank,
        is_latest,
        is_latest_trained,
        case
            when has_valid_pin then is_pinned and has_forecasts
            else coalesce(rank = 1, false)
        end as is_champion,
        is_pinned,
        case
            when has_valid_pin and is_pinned and has_forecasts then 'pinned'
            when not has_valid_pin and rank = 1 then 'lowest weighted_rmspe'
        end as champion_reason,
        'weighted_rmspe' as champion_metric

    from pinned

)

select * from final
order by model, trained_at, model_version
