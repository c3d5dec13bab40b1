"""Publishing: a consistent read-only copy of the warehouse for the API, dashboards and BI tools."""

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, MaterializeResult, MetadataValue, asset

from orchestration.resources import DuckDBWarehouse, PlatformPaths
from warehouse.publish import publish_warehouse


def published_warehouse_asset(upstream: list[AssetsDefinition]) -> AssetsDefinition:
    """Depends on every other asset, so a failed step or blocking check in the run publishes nothing."""

    @asset(
        key=AssetKey(["published", "warehouse"]),
        deps=[key for assets_def in upstream for key in assets_def.keys],
        group_name="serving",
        kinds={"duckdb"},
        description="Read-only copy of marts + ml for the API, dashboard and BI tools, replaced atomically "
                    "after every successful run (DATA_DIR/published/warehouse.duckdb).",
    )
    def published_warehouse(context: AssetExecutionContext, warehouse: DuckDBWarehouse,
                            paths: PlatformPaths) -> MaterializeResult:
        version = publish_warehouse(warehouse.path, paths.published_dir, source_run=context.run_id)
        return MaterializeResult(metadata={
            "published_version": version.version_id,
            "path": MetadataValue.path(str(version.path)),
            "previous_version": version.previous_version_id or "",
            "rows": version.n_rows,
            "tables": MetadataValue.md("\n".join(f"- `{t}`: {n:,} rows" for t, n in version.tables.items())),
        })

    return published_warehouse
