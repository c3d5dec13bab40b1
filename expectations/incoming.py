"""Validation of newly loaded files before they replace anything: the side schema's tables under their final
names (see :func:`ingestion.load.incoming_as_raw`), one outcome per raw table."""

from __future__ import annotations

from pathlib import Path

from ingestion.load import incoming_as_raw
from ingestion.raw_layout import RAW_COLUMNS

from .guards import GuardThresholds
from .outcome import ValidationOutcome
from .runner import validate_table


def validate_incoming(warehouse_path: str | Path, data_docs_dir: str | Path | None = None,
                      thresholds: GuardThresholds | None = None) -> dict[str, ValidationOutcome]:
    """Run every raw table's suite on the incoming (not yet promoted) tables of ``warehouse_path``; ``thresholds``:
    the guards' limits (default: :class:`GuardThresholds`' defaults)."""
    parameters = (thresholds or GuardThresholds()).parameter_functions()
    with incoming_as_raw(warehouse_path) as incoming:
        return {table: validate_table(incoming, f"raw.{table}", data_docs_dir=data_docs_dir, parameters=parameters)
                for table in RAW_COLUMNS}


def failure_report(outcomes: dict[str, ValidationOutcome]) -> str:
    """Markdown of every failed table's blocking expectations (empty when all passed)."""
    return "\n\n".join(f"### raw.{t}\n{o.summary_markdown()}" for t, o in outcomes.items() if not o.success)
