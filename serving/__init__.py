"""Serving: the published read-only warehouse, the forecast API and the dashboard.

The pipeline writes only to its build warehouse (``DATA_DIR/warehouse.duckdb``). After a successful run
:func:`serving.publish.publish_warehouse` writes a complete copy to a new file and renames it into place as
``DATA_DIR/published/warehouse.duckdb``; readers (``serving.api``, ``serving.dashboard``, BI tools) only
ever open that copy, read-only, so they never block a run and never see a half-built state.
"""

__all__ = [
    "PublishedVersion",
    "PublishedWarehouseMissing",
    "open_published",
    "publish_warehouse",
    "published_path",
    "read_publication",
]


def __getattr__(name: str):  # lazy, so `python -m serving.publish` does not import the module twice
    if name in __all__:
        from serving import publish

        return getattr(publish, name)
    raise AttributeError(name)
