"""dbt models as Dagster assets: the warehouse models, and the BI marts downstream of the forecasts."""

import os
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetExecutionContext, AssetKey, MetadataValue, Output
from dagster_dbt import DagsterDbtTranslator, DbtCliResource, DbtProject, dbt_assets

from forecasting.charts import INSIGHT_CHARTS, insight_charts_markdown
from orchestration.resources import REPO_ROOT, DuckDBWarehouse

DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
FORECAST_TAG = "tag:forecast"

# dbt is installed next to this interpreter; find it there even when the venv is not activated.
os.environ["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR)


def _manifest_is_stale(project: DbtProject) -> bool:
    if not project.manifest_path.exists():
        return True
    built = project.manifest_path.stat().st_mtime
    sources = [DBT_PROJECT_DIR / "dbt_project.yml", *DBT_PROJECT_DIR.glob("models/**/*"),
               *DBT_PROJECT_DIR.glob("macros/**/*"), *DBT_PROJECT_DIR.glob("tests/**/*")]
    return any(p.stat().st_mtime > built for p in sources if p.is_file())


# `dagster dev` re-parses on its own; everywhere else (CLI, tests) parse once when the project changed.
dbt_project.prepare_if_dev()
if _manifest_is_stale(dbt_project):
    dbt_project.preparer.prepare(dbt_project)


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


def _build(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse):
    # The dbt profile reads the warehouse path from the environment; keep it the resource's path.
    os.environ["WAREHOUSE_PATH"] = str(Path(warehouse.path).resolve())
    # dbt holds the DuckDB file until it exits: collect its events, then chart the insight marts.
    events = list(dbt.cli(["build"], context=context).stream())
    charted = {
        context.asset_key_for_output(e.output_name).path[-1]
        for e in events
        if isinstance(e, Output) and context.asset_key_for_output(e.output_name).path[-1] in INSIGHT_CHARTS
    }
    charts = {}
    if charted:
        with warehouse.connect(read_only=True) as con:
            charts = insight_charts_markdown(con, sorted(charted))
    for event in events:
        name = context.asset_key_for_output(event.output_name).path[-1] if isinstance(event, Output) else None
        if charts.get(name):
            event = event.with_metadata({**event.metadata, "chart": MetadataValue.md(charts[name])})
        yield event


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, exclude=FORECAST_TAG,
            dagster_dbt_translator=translator, name="warehouse_models")
def warehouse_models(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse):
    """Staging, intermediate and mart models built and tested by `dbt build`."""
    yield from _build(context, dbt, warehouse)


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, select=FORECAST_TAG,
            dagster_dbt_translator=translator, name="forecast_marts")
def forecast_marts(context: AssetExecutionContext, dbt: DbtCliResource, warehouse: DuckDBWarehouse):
    """BI marts over the published forecasts (`ml` sources), built after the models write back."""
    yield from _build(context, dbt, warehouse)
