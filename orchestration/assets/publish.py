"""Publishing: a consistent read-only copy of the warehouse for the API, dashboards and BI tools; then the old
model artifacts can go."""

from dagster import AssetExecutionContext, AssetKey, AssetsDefinition, Config, MaterializeResult, MetadataValue, asset

from forecasting.artifacts import prune_artifacts
from orchestration.assets.metadata import DATA_ENGINEERING, ROW_COUNT
from orchestration.resources import DuckDBWarehouse, PlatformPaths, TrainingSettings
from orchestration.run_guard import served_versions
from settings import Settings
from warehouse.publish import publish_warehouse
from warehouse.staging import commit

PUBLISHED_KEY = AssetKey(["published", "warehouse"])


class PublishConfig(Config):
    """The published copy's DuckDB storage version (default $PUBLISH_STORAGE_VERSION, else v1.0.0: readable by
    DuckDB 1.0 and later, which BI drivers bundle); empty: DuckDB's own current format."""

    storage_version: str = Settings.from_env().publish_storage_version


def published_warehouse_asset(upstream: list[AssetsDefinition]) -> AssetsDefinition:
    """Depends on every other asset, so a failed step or blocking check in the run publishes nothing."""

    @asset(
        key=PUBLISHED_KEY,
        deps=[key for assets_def in upstream for key in assets_def.keys],
        group_name="serving",
        kinds={"duckdb"},
        owners=DATA_ENGINEERING,
        description="Read-only copy of marts + ml for the API, dashboard and BI tools, replaced atomically "
                    "after every successful run (DATA_DIR/published/warehouse.duckdb); then the run's staged build "
                    "warehouse becomes the build warehouse.",
    )
    def published_warehouse(context: AssetExecutionContext, config: PublishConfig, warehouse: DuckDBWarehouse,
                            paths: PlatformPaths) -> MaterializeResult:
        # Every other step of the run passed: publish what it staged, then make that the build warehouse too.
        version = publish_warehouse(warehouse.active_path, paths.published_dir, source_run=context.run_id,
                                    reader_group=paths.reader_group,
                                    storage_version=config.storage_version)
        commit(warehouse.path, context.run_id)
        context.log.info(f"published {version.version_id}: {len(version.tables)} tables, {version.n_rows:,} rows")
        return MaterializeResult(metadata={
            "published_version": version.version_id,
            "path": MetadataValue.path(str(version.path)),
            "previous_version": version.previous_version_id or "",
            ROW_COUNT: version.n_rows,
            "tables": MetadataValue.md("\n".join(f"- `{t}`: {n:,} rows" for t, n in version.tables.items())),
        })

    return published_warehouse


@asset(key=AssetKey(["models", "artifact_retention"]), deps=[PUBLISHED_KEY], group_name="serving", owners=DATA_ENGINEERING,
       description="Keeps the newest KEEP_MODEL_VERSIONS artifact folders per model (>= 2: this run's and the one "
                   "the previous published copy served), and always those the published copy serves; runs only "
                   "after a successful publish.")
def artifact_retention(context: AssetExecutionContext, paths: PlatformPaths,
                       training: TrainingSettings) -> MaterializeResult:
    served = served_versions(paths.published_path)
    if served is None:  # cannot tell what readers use: delete nothing
        context.log.warning("the published copy could not be read: no model artifacts pruned this time")
        return MaterializeResult(metadata={"removed": 0, "kept_per_model": training.keep_versions})
    pruned = prune_artifacts(paths.models_dir, training.keep_versions, protect=served)
    if pruned:
        context.log.info(f"removed {len(pruned)} old model artifact folders (keeping {training.keep_versions} per "
                         f"model and the {len(served)} versions the published copy serves)")
    return MaterializeResult(metadata={"removed": len(pruned), "kept_per_model": training.keep_versions,
                                       "served_versions_kept": len(served)})
