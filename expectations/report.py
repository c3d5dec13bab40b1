"""The command-line report of failed blocking expectations: per failure the source file, column(s), the rule in
words and up to five sample rows, so a failed run says what is wrong without opening the UI or the Data Docs."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .outcome import MAX_SAMPLES, ValidationOutcome


def _rule(failure: dict[str, Any]) -> str:
    name = failure["expectation_type"].removeprefix("expect_").replace("_", " ")
    bounds = ", ".join(f"{k}={v}" for k, v in failure.get("kwargs", {}).items()
                       if k not in ("mostly", "result_format", "row_condition", "condition_parser") and v is not None)
    rule = f"{name} ({bounds})" if bounds else name
    if failure.get("kwargs", {}).get("row_condition"):
        rule += f" where {failure['kwargs']['row_condition']}"
    return f"{failure['notes']} [{rule}]" if failure.get("notes") else rule


def _columns(table: str, failure: dict[str, Any]) -> str:
    from .suites import SUITES  # GX import: only when something failed

    derived = SUITES[table].derived_columns if table in SUITES else {}
    shown = [f"{c} (computed from {', '.join(derived[c][1])})" if c in derived else c for c in failure["columns"]]
    return ", ".join(shown) or "(table)"


def _samples(failure: dict[str, Any]) -> str:
    if failure.get("exception"):
        return f"could not be evaluated: {failure['exception']}"
    rows = failure.get("sample_unexpected_rows") or []
    if rows:
        return "; ".join(", ".join(f"{k}={v}" for k, v in row.items()) for row in rows[:MAX_SAMPLES])
    values = failure.get("sample_unexpected_values") or []
    if values:
        return ", ".join(map(repr, values[:MAX_SAMPLES]))
    return f"observed {failure.get('observed_value')}" if failure.get("observed_value") is not None else "-"


RowFiles = Callable[[str, Sequence[dict[str, Any]]], Sequence[str | None]]


def failure_lines(outcomes: Mapping[str, ValidationOutcome], source_files: Mapping[str, Path | None],
                  row_files: RowFiles | None = None, warnings: bool = False) -> str:
    """Plain text, one block per failed blocking expectation (``warnings``: per failed non-blocking one instead);
    ``source_files``: raw table -> the file it came from; ``row_files``: (raw table, sample rows) -> the file each
    row came from (a table merged from several files, e.g. :func:`ingestion.load.incoming_row_files`); where it
    knows, those files are named instead."""
    lines: list[str] = []
    for table, outcome in outcomes.items():
        source = source_files.get(table)
        for failure in outcome.warnings if warnings else outcome.blocking_failures:
            count = failure.get("unexpected_count")
            samples = (failure.get("sample_unexpected_rows") or [])[:MAX_SAMPLES]
            files = list(row_files(table, samples)) if row_files and samples else []
            named = (", ".join(dict.fromkeys(f or "rows loaded by an earlier run" for f in files)) if any(files)
                     else source.name if source else "(no file)")
            lines += [
                f"- {named} (raw.{table}), column {_columns(outcome.table, failure)}"
                + (f": {count:,} of {failure.get('element_count') or 0:,} rows" if count is not None else ""),
                f"    rule: {_rule(failure)}",
                f"    samples: {_samples(failure)}",
            ]
    return "\n".join(lines)
