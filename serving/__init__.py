"""Serving: readers of the published read-only warehouse, the forecast API and the dashboard.

The pipeline writes only to its build warehouse; :mod:`warehouse.publish` writes a complete copy and renames it
into place as ``DATA_DIR/published/warehouse.duckdb``. Everything here only ever opens that copy, read-only.
"""
