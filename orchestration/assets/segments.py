"""Customer–sales segments: KMeans over store-months, written to `ml` for BI and dbt."""

from dagster import AssetExecutionContext, AssetKey, AssetSpec, Config, MaterializeResult, MetadataValue, multi_asset

from analytics.charts import segments_markdown
from analytics.segments import DEFAULT_N_CLUSTERS, run_segments
from orchestration.assets.metadata import DATA_SCIENCE, ROW_COUNT
from orchestration.resources import DuckDBWarehouse

SEGMENT_TABLES = {
    "customer_sales_clusters": "Cluster of every complete store-month in (customers, sales) space.",
    "customer_sales_cluster_centers": "Each cluster's centre in customers and sales, and its size.",
}


class SegmentsConfig(Config):
    n_clusters: int = DEFAULT_N_CLUSTERS


def _metadata_value(value):
    return MetadataValue.null() if value is None else value


@multi_asset(
    name="customer_sales_segments",
    specs=[AssetSpec(AssetKey(["ml", t]), description=d, group_name="ml", kinds={"scikit-learn"},
                     deps=[AssetKey(["marts", "agg_store_monthly"])], owners=DATA_SCIENCE)
           for t, d in SEGMENT_TABLES.items()],
)
def customer_sales_segments(context: AssetExecutionContext, config: SegmentsConfig, warehouse: DuckDBWarehouse):
    """StandardScaler + KMeans on store-months; silhouette of k = 4..30 in the metadata."""
    with warehouse.connect() as con:
        result = run_segments(con, n_clusters=config.n_clusters)
    meta = result.metadata()
    summary = {
        ROW_COUNT: len(result.clusters),
        **{k: _metadata_value(v) for k, v in meta.items() if k != "silhouette_table"},
        "silhouette_by_k": MetadataValue.md(meta["silhouette_table"]),
        "chart": MetadataValue.md(segments_markdown(result)),
    }
    yield MaterializeResult(asset_key=AssetKey(["ml", "customer_sales_clusters"]), metadata=summary)
    yield MaterializeResult(asset_key=AssetKey(["ml", "customer_sales_cluster_centers"]),
                            metadata={ROW_COUNT: len(result.centers), "n_clusters": meta["n_clusters"]})
