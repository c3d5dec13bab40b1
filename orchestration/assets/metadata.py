"""What every asset tells the Dagster UI the same way: its owner team and the standard table metadata keys."""

DATA_ENGINEERING = ["team:data-engineering"]  # raw loads, dbt models, the published copy
DATA_SCIENCE = ["team:data-science"]  # models, the ml write-back, segments

# Dagster's standard keys (the UI shows them as the asset's row count and columns; `dagster.TableMetadataSet`
# is not exported by the installed version).
ROW_COUNT = "dagster/row_count"
COLUMN_SCHEMA = "dagster/column_schema"
