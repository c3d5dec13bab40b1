"""dbt models as Dagster assets: the warehouse models, and the BI marts downstream of the forecasts."""

from collections.abc import Mapping
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, dbt_assets

from analytics.charts import INSIGHT_CHARTS, insight_charts_markdown
from orchestration.resources import DuckDBWarehouse, TrainingSettings
from warehouse.dbt import dbt_args, dbt_project, prepare_manifest

FORECAST_TAG = "tag:forecast"

# Parse when the project changed (also on every code reload of `dagster dev`): the assets come from the manifest.
prepare_manifest()


class WarehouseDbtTranslator(DagsterDbtTranslator):
    """Asset keys follow the warehouse: `<schema>/<model>` for models, `<source>/<table>` for sources."""

    def get_asset_key(self, dbt_resource_props: Mapping[str, Any]) -> AssetKey:
        if dbt_resource_props["resource_type"] == "source":
            return AssetKey([dbt_resource_props["source_name"], dbt_resource_props["name"]])
        return AssetKey([dbt_resource_props["config"]["schema"], dbt_resource_props["name"]])

    def get_group_name(self, dbt_resource_props: Mapping[str, Any]) -> str | None:
        if FORECAST_TAG.removeprefix("tag:") in dbt_resource_props.get("tags", []):
            return "forecast_marts"
        return dbt_resource_props["config"].get("schema")


translator = WarehouseDbtTranslator()


def _build(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse,
           training: TrainingSettings):
    # dbt holds the DuckDB file until it exits: collect its events, then count rows and chart the insight marts.
    args = dbt_args(["build"], warehouse.path, training.spec.dbt_vars())
    events = list(dbt.cli(args, context=context).stream())
    built = {e.output_name: context.asset_key_for_output(e.output_name).path for e in events if isinstance(e, Output)}
    with warehouse.connect(read_only=True) as con:
        counts = {name: con.execute(f'SELECT count(*) FROM "{schema}"."{table}"').fetchall()[0][0]
                  for name, (schema, table) in built.items()}
        charts = insight_charts_markdown(con, sorted({t for _, t in built.values()} & set(INSIGHT_CHARTS)))
    for event in events:
        if isinstance(event, Output):
            table = built[event.output_name][-1]
            extra = {"dagster/row_count": counts[event.output_name]}
            if charts.get(table):
                extra["chart"] = MetadataValue.md(charts[table])
            event = event.with_metadata({**event.metadata, **extra})
        yield event


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, exclude=FORECAST_TAG,
            dagster_dbt_translator=translator, name="warehouse_models")
def warehouse_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse,
                     training: TrainingSettings):
    """Staging, intermediate and mart models built and tested by `dbt build`."""
    yield from _build(context, dbt, warehouse, training)


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, select=FORECAST_TAG,
            dagster_dbt_translator=translator, name="forecast_marts")
def forecast_marts(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse,
                   training: TrainingSettings):
    """BI marts over the published forecasts (`ml` sources), built after the models write back."""
    yield from _build(context, dbt, warehouse, training)
