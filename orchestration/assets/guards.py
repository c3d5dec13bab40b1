"""Guards against absurd values: their thresholds (a resource, defaults from settings.Settings / GUARD_*) and the
forecast-level guard, a blocking check on ml/store_sales_forecast: a forecast far beyond what its store sells on a busy day
stops the run before the forecast marts and the published copy, so a wrong model never reaches the readers."""


from dagster import (
    AssetCheckExecutionContext,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetKey,
    ConfigurableResource,
    MetadataValue,
    asset_check,
)

from expectations.guards import GuardThresholds
from orchestration.resources import DuckDBWarehouse
from settings import Settings

_ENV = Settings.from_env()
FORECAST_KEY = AssetKey(["ml", "store_sales_forecast"])
MAX_LISTED = 5


class GuardSettings(ConfigurableResource):
    """Thresholds of the blocking guards (README: configuration table)."""

    store_max_multiple: float = _ENV.guard_store_max_multiple
    sales_per_customer_min: float = _ENV.guard_sales_per_customer_min
    sales_per_customer_max: float = _ENV.guard_sales_per_customer_max
    max_competition_distance_m: float = _ENV.guard_max_competition_distance_m
    forecast_max_multiple: float = _ENV.guard_forecast_max_multiple

    def raw_thresholds(self, horizon_days: int) -> GuardThresholds:
        return GuardThresholds(store_max_multiple=self.store_max_multiple,
                               sales_per_customer_min=self.sales_per_customer_min,
                               sales_per_customer_max=self.sales_per_customer_max,
                               max_competition_distance_m=self.max_competition_distance_m,
                               horizon_days=horizon_days)


# The store's reference: its 95th percentile of open-day sales, not its maximum: the maximum is what a few wrong
# history rows (the x1000 case) inflate, and it would then let their forecasts through.
STORE_QUANTILE = 0.95
# The rows of the latest write-back (one created_at per write) against each store's reference in raw.sales.
EXCESSIVE_FORECASTS = f"""
WITH written AS (
    SELECT * FROM ml.store_sales_forecast WHERE created_at = (SELECT max(created_at) FROM ml.store_sales_forecast)
), history AS (
    SELECT "Store" AS store_id, quantile_cont("Sales", {STORE_QUANTILE}) AS ref_sales
    FROM raw.sales WHERE "Open" = 1 AND "Sales" > 0 GROUP BY ALL
)
SELECT *
FROM (SELECT store_id, model, model_version, max(sales_pred) AS max_forecast,
             arg_max(forecast_date, sales_pred) AS forecast_date
      FROM written GROUP BY ALL)
JOIN history USING (store_id)
WHERE max_forecast > ? * ref_sales
ORDER BY max_forecast / ref_sales DESC, store_id, model
"""


@asset_check(asset=FORECAST_KEY, name="forecast_within_store_history", blocking=True,
             description="Every store's forecast stays within GUARD_FORECAST_MAX_MULTIPLE x the store's 95th "
                         "percentile of open-day sales; blocking: nothing downstream (marts, publishing) runs otherwise.")
def forecast_within_store_history(context: AssetCheckExecutionContext, warehouse: DuckDBWarehouse,
                                  guards: GuardSettings) -> AssetCheckResult:
    multiple = guards.forecast_max_multiple
    with warehouse.connect(read_only=True) as con:
        bad = con.execute(EXCESSIVE_FORECASTS, [multiple]).df()
    passed = bad.empty
    description = f"every store's forecast is at most {multiple:g} x its {STORE_QUANTILE:.0%} percentile of daily sales"
    if not passed:
        pairs = bad.groupby("model")["store_id"].nunique()
        listed = "; ".join(
            f"store {r.store_id}, model {r.model} {r.model_version}: {r.max_forecast:,.0f} on {r.forecast_date:%Y-%m-%d} "
            f"vs the store's {STORE_QUANTILE:.0%} percentile of daily sales {r.ref_sales:,.0f} "
            f"({r.max_forecast / max(r.ref_sales, 1):,.1f} x)"
            for r in bad.head(MAX_LISTED).itertuples())
        description = (f"forecast refused: {len(bad)} store-model pairs ({', '.join(f'{m}: {n} stores' for m, n in pairs.items())}) "
                       f"above {multiple:g} x the store's {STORE_QUANTILE:.0%} percentile of open-day sales "
                       f"(GUARD_FORECAST_MAX_MULTIPLE), e.g. {listed}")
        context.log.error(description)
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.ERROR, description=description,
        metadata={"max_multiple": multiple, "excessive_store_models": len(bad),
                  "samples": MetadataValue.md(bad.head(20).to_markdown(index=False) if not passed else "none")})
