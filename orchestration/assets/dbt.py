"""dbt models as Dagster assets: the warehouse models, and the BI marts downstream of the forecasts."""

import shutil
from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output, TableColumn, TableSchema
from dagster_dbt import DagsterDbtTranslator, DagsterDbtTranslatorSettings, DbtCliResource, dbt_assets

from analytics.charts import INSIGHT_CHARTS, insight_charts_markdown
from orchestration.assets.metadata import COLUMN_SCHEMA, DATA_ENGINEERING, ROW_COUNT
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

    def get_owners(self, dbt_resource_props: Mapping[str, Any]) -> Sequence[str] | None:
        """A model's `meta.dagster.owners` (or its dbt group's owner) if set, else data engineering."""
        return super().get_owners(dbt_resource_props) or DATA_ENGINEERING


# Source tests (the `ml` sources' keys and not-nulls, run by the forecast marts' `dbt build`) become checks of the
# Python assets that write those tables; without this dagster-dbt logs them as observations with a warning each.
translator = WarehouseDbtTranslator(DagsterDbtTranslatorSettings(enable_source_tests_as_checks=True))


def _column_schema(columns: list[tuple[str, str]], documented: TableSchema | None) -> TableSchema:
    """The built table's columns and DuckDB types, with the descriptions of dbt's YAML (the definition's schema):
    the asset page merges those in itself, but the event and the GraphQL API then carry the whole schema."""
    described = {c.name.lower(): c.description for c in (documented.columns if documented else [])}
    return TableSchema(columns=[TableColumn(name, data_type, description=described.get(name.lower()))
                                for name, data_type in columns])


def _build(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse,
           training: TrainingSettings):
    # dbt holds the DuckDB file until it exits: collect its events, then count rows, read the column types and chart
    # the insight marts. (dagster-dbt's fetch_row_counts()/fetch_column_metadata() also wait for the exit, but open
    # the file through an in-process dbt adapter that keeps it open read-only for the rest of the process, so the
    # later steps of an in-process run could not write it; they also skip the row counts of views.)
    args = dbt_args(["build"], warehouse.active_path, training.spec.dbt_vars())
    invocation = dbt.cli(args, context=context)
    events = list(invocation.stream())
    # Each invocation writes its own target folder (about 13 MB of compiled SQL and run results); the step's log and
    # events already hold what a user reads, so the folders would only pile up run after run.
    shutil.rmtree(invocation.target_path, ignore_errors=True)
    built = {e.output_name: context.asset_key_for_output(e.output_name) for e in events if isinstance(e, Output)}
    with warehouse.connect(read_only=True) as con:
        counts = {name: con.execute(f'SELECT count(*) FROM "{key.path[0]}"."{key.path[-1]}"').fetchall()[0][0]
                  for name, key in built.items()}
        columns = defaultdict(list)
        for schema, table, column, data_type in con.execute(
                "SELECT table_schema, table_name, column_name, data_type FROM information_schema.columns "
                "WHERE table_catalog = current_database() ORDER BY table_schema, table_name, ordinal_position"
        ).fetchall():
            columns[(schema, table)].append((column, data_type))
        charts = insight_charts_markdown(con, sorted({k.path[-1] for k in built.values()} & set(INSIGHT_CHARTS)))
    specs = context.assets_def.specs_by_key
    for event in events:
        if isinstance(event, Output):
            key = built[event.output_name]
            extra = {ROW_COUNT: counts[event.output_name],
                     COLUMN_SCHEMA: _column_schema(columns[tuple(key.path)],
                                                   specs[key].metadata.get(COLUMN_SCHEMA))}
            if charts.get(key.path[-1]):
                extra["chart"] = MetadataValue.md(charts[key.path[-1]])
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
