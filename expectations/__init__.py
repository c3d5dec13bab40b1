"""Great Expectations validation suites for the incoming raw tables of the Rossmann warehouse.

Public API (the Dagster layer calls :func:`validate_table`)::

    from expectations import validate_table, ValidationOutcome, SUITES
    outcome = validate_table(warehouse_path, "raw.sales", data_docs_dir=DATA_DIR / "reports" / "data_docs")
    if not outcome.success: ...            # a blocking (severity "error") expectation failed
    outcome.summary_markdown()             # for Dagster metadata

Tables with a suite: ``raw.sales``, ``raw.stores``, ``raw.plan`` (suites live in ``expectations/suites.py``).
GX owns the rules on these incoming files; the rules on what dbt builds are dbt tests (``dbt_project/``).

Importing this package is cheap; Great Expectations (~2 s import) is loaded on first use of
``validate_table`` / ``SUITES``.
"""

from __future__ import annotations

from typing import Any

from .outcome import SEVERITY_ERROR, SEVERITY_WARN, ValidationOutcome

_LAZY = {
    "validate_table": "runner",
    "validate_incoming": "incoming",
    "failure_report": "incoming",
    "TableNotFoundError": "runner",
    "SUITES": "suites",
    "SuiteDefinition": "suites",
}

__all__ = [
    "SEVERITY_ERROR",
    "SEVERITY_WARN",
    "SUITES",
    "SuiteDefinition",
    "TableNotFoundError",
    "ValidationOutcome",
    "failure_report",
    "validate_incoming",
    "validate_table",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f".{_LAZY[name]}", __name__)
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
