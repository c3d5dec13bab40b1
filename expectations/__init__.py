"""Great Expectations validation suites for the Rossmann warehouse.

Public API (the Dagster layer calls :func:`validate_table`)::

    from expectations import validate_table, ValidationOutcome, SUITES
    outcome = validate_table(warehouse_path, "raw.sales", data_docs_dir=DATA_DIR / "reports" / "data_docs")
    if not outcome.success: ...            # a blocking (severity "error") expectation failed
    outcome.summary_markdown()             # for Dagster metadata

Tables with a suite: ``raw.sales``, ``raw.stores``, ``raw.plan``,
``marts.fct_store_daily_features`` (see :data:`TABLES`; suites live in ``expectations/suites.py``).

Importing this package is cheap; Great Expectations (~2 s import) is loaded on first use of
``validate_table`` / ``SUITES``.
"""

from __future__ import annotations

import os
from typing import Any

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from .outcome import (  # noqa: E402
    SEVERITY_ERROR,
    SEVERITY_WARN,
    BlockingValidationError,
    ValidationOutcome,
)

#: Tables that have a suite (keys of ``SUITES``), available without importing GX.
TABLES = ("raw.sales", "raw.stores", "raw.plan", "marts.fct_store_daily_features")

_LAZY = {
    "validate_table": "runner",
    "TableNotFoundError": "runner",
    "SUITES": "suites",
    "SuiteDefinition": "suites",
}

__all__ = [
    "SEVERITY_ERROR",
    "SEVERITY_WARN",
    "SUITES",
    "TABLES",
    "BlockingValidationError",
    "SuiteDefinition",
    "TableNotFoundError",
    "ValidationOutcome",
    "validate_table",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
