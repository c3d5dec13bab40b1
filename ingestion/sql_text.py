"""SQL text for the DuckDB statements that take no parameters (``ATTACH``, ``read_csv`` paths, identifiers): the
one quoting rule every stage uses, so a path with a quote or a space works everywhere."""

from __future__ import annotations

import os


def sql_string(value: str | os.PathLike) -> str:
    """A SQL string literal."""
    return "'" + str(value).replace("'", "''") + "'"


def sql_identifier(*parts: str) -> str:
    """Quoted identifiers joined with dots: ``sql_identifier("ml", "x")`` is ``"ml"."x"``."""
    return ".".join('"' + part.replace('"', '""') + '"' for part in parts)
