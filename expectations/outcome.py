"""Result object returned by :func:`expectations.validate_table` (no Great Expectations import here)."""

from __future__ import annotations

import datetime as _dt
import math
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

#: Severity labels stored in every expectation's ``meta["severity"]``.
SEVERITY_ERROR = "error"  # blocking: downstream assets must not run
SEVERITY_WARN = "warn"  # reported, never blocks

MAX_SAMPLES = 5  # sample unexpected values kept per failure in the outcome (data docs show more)


@dataclass
class ValidationOutcome:
    """Outcome of validating one warehouse table against its Great Expectations suite.

    ``success`` is True when no *blocking* (severity ``error``) expectation failed; failed
    ``warn`` expectations only land in ``warnings``. Each failure is a JSON-friendly dict::

        {"expectation_type": "expect_column_values_to_be_in_set", "severity": "error",
         "column": "StateHoliday", "columns": ["StateHoliday"], "unexpected_count": 3,
         "unexpected_percent": 0.01, "element_count": 970379,
         "sample_unexpected_values": ["x", "x", "z"],
         "sample_unexpected_rows": [{"StateHoliday": "x", "Store": 7, "Date": "2015-01-02"}, ...],
         "observed_value": None, "kwargs": {...}, "notes": "...", "exception": None}

    ``sample_unexpected_rows`` holds the table's key columns of a few failing rows (map
    expectations only); ``observed_value`` is set for aggregate expectations (types, column set:
    ``{"missing": [...], "unexpected": [...]}``); ``exception`` when GX could not evaluate the
    expectation (e.g. a missing column) -- that counts as a failure of its severity.
    """

    table: str
    suite_name: str
    success: bool
    blocking_failures: list[dict[str, Any]]
    warnings: list[dict[str, Any]]
    n_expectations: int
    n_rows: int
    n_failed: int = 0
    run_time: str = ""
    duration_s: float = 0.0
    data_docs_index: Path | None = None
    parameters: dict[str, Any] = field(default_factory=dict)

    @property
    def n_passed(self) -> int:
        return self.n_expectations - self.n_failed

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["data_docs_index"] = str(self.data_docs_index) if self.data_docs_index else None
        d["n_passed"] = self.n_passed
        return d

    def summary_markdown(self, max_rows: int = 20) -> str:
        """Short Markdown summary, suitable for Dagster ``MetadataValue.md``."""
        status = "PASSED" if self.success else "FAILED (blocking)"
        if self.success and self.warnings:
            status = "PASSED with warnings"
        lines = [
            f"### `{self.table}`: {status}",
            "",
            f"- rows validated: {self.n_rows:,}",
            f"- expectations: {self.n_expectations} ({self.n_passed} passed, "
            f"{len(self.blocking_failures)} blocking failures, {len(self.warnings)} warnings)",
            f"- run time (UTC): {self.run_time}; duration {self.duration_s:.1f} s",
        ]
        if self.data_docs_index:
            lines.append(f"- data docs: `{self.data_docs_index}`")
        for title, items in (("Blocking failures", self.blocking_failures), ("Warnings", self.warnings)):
            if not items:
                continue
            lines += ["", f"**{title}**", "", "| expectation | column(s) | unexpected | sample / observed |",
                      "|---|---|---|---|"]
            for f in items[:max_rows]:
                lines.append(
                    "| {} | {} | {} | {} |".format(
                        f["expectation_type"],
                        _md(", ".join(f["columns"])) or "(table)",
                        _fmt_count(f),
                        _md(_fmt_sample(f)),
                    )
                )
            if len(items) > max_rows:
                lines.append(f"| ... {len(items) - max_rows} more | | | |")
        return "\n".join(lines)


def _fmt_count(f: dict[str, Any]) -> str:
    if f.get("unexpected_count") is None:
        return "-"
    pct = f.get("unexpected_percent")
    return f"{f['unexpected_count']:,}" + (f" ({pct:.3g}%)" if pct is not None else "")


def _fmt_sample(f: dict[str, Any]) -> str:
    if f.get("exception"):
        return "exception: " + _trim(str(f["exception"]), 120)
    values = f.get("sample_unexpected_values") or []
    if f.get("sample_unexpected_rows") and all(v is None for v in values):
        return "rows: " + _trim(", ".join(map(_short, f["sample_unexpected_rows"])), 160)
    if values:
        return _trim(", ".join(map(_short, values)), 160)
    if f.get("observed_value") is not None:
        return "observed: " + _trim(_short(f["observed_value"]), 160)
    return ""


def _short(v: Any) -> str:
    if isinstance(v, dict):
        return "{" + ", ".join(f"{k}={_short(x)}" for k, x in v.items()) + "}"
    return repr(v) if isinstance(v, str) else str(v)


def _trim(s: str, n: int) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _md(s: str) -> str:
    return s.replace("|", "\\|").replace("\n", " ")


def jsonable(v: Any) -> Any:
    """Convert numpy / pandas / datetime scalars (and containers of them) to plain JSON values."""
    if v is None or isinstance(v, (bool, str)):
        return v
    if not isinstance(v, (dict, list, tuple, set)):
        try:  # pandas NA / NaT (NaT is also a datetime instance)
            import pandas as pd

            if pd.isna(v) is True:
                return None
        except (TypeError, ValueError, ImportError):
            pass
    if isinstance(v, int):
        return int(v)
    if isinstance(v, float):
        return None if math.isnan(v) else float(v)
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, set)):
        return [jsonable(x) for x in v]
    if isinstance(v, (_dt.datetime, _dt.date)):
        # pandas Timestamps are datetimes; midnight timestamps of DATE columns render as dates
        if isinstance(v, _dt.datetime) and v.time() == _dt.time(0) and v.tzinfo is None:
            return v.date().isoformat()
        return v.isoformat()
    if hasattr(v, "tolist") and getattr(v, "ndim", 0):  # numpy array
        return jsonable(v.tolist())
    if hasattr(v, "item"):  # numpy scalar
        try:
            return jsonable(v.item())
        except (ValueError, TypeError):
            pass
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return str(v)
