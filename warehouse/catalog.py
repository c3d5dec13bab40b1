"""What the warehouse holds: the one check whether a table or view exists (before the first run, marts and `ml`
tables do not)."""

from __future__ import annotations

import duckdb


def relation_exists(con: duckdb.DuckDBPyConnection, schema: str, name: str) -> bool:
    """Whether ``schema.name`` is a table or view of the connection's current database."""
    return bool(con.execute("SELECT count(*) FROM information_schema.tables WHERE table_catalog = current_database() "
                            "AND table_schema = ? AND table_name = ?", [schema, name]).fetchone()[0])
