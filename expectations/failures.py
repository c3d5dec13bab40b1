"""One failed expectation as the outcome reports it: type, severity, column(s), counts, a few sample values and
rows, the observed value and the arguments, shortened for Dagster metadata and the command line."""

from __future__ import annotations

from typing import Any

from .outcome import MAX_SAMPLES, SEVERITY_ERROR, SEVERITY_WARN, jsonable


def failure_from_result(r) -> dict[str, Any]:
    """The record of a GX ``ExpectationValidationResult`` that did not pass."""
    res = r.result or {}
    return _record(r.expectation_config,
                   unexpected_count=jsonable(res.get("unexpected_count")),
                   unexpected_percent=jsonable(res.get("unexpected_percent")),
                   element_count=jsonable(res.get("element_count")),
                   sample_unexpected_values=jsonable(list((res.get("partial_unexpected_list") or [])[:MAX_SAMPLES])),
                   sample_unexpected_rows=_sample_rows(res.get("partial_unexpected_index_list")),
                   observed_value=_short_observed(_observed(res)),
                   exception=_exception_message(r.exception_info))


def unresolved_failure(expectation, errors: dict[str, str]) -> dict[str, Any]:
    """The record of an expectation that could not run because a suite parameter it needs is unavailable."""
    return _record(expectation.configuration, unexpected_count=None, unexpected_percent=None, element_count=None,
                   sample_unexpected_values=[], sample_unexpected_rows=[], observed_value=None,
                   exception="; ".join(f"suite parameter {k!r} unavailable ({v})" for k, v in errors.items()))


def _record(cfg, **result: Any) -> dict[str, Any]:
    kwargs = dict(cfg.kwargs)
    columns = _columns(kwargs)
    return {
        "expectation_type": cfg.type,
        "severity": _severity(cfg),
        "column": columns[0] if len(columns) == 1 else None,
        "columns": columns,
        "unexpected_count": result["unexpected_count"],
        "unexpected_percent": result["unexpected_percent"],
        "element_count": result["element_count"],
        "sample_unexpected_values": result["sample_unexpected_values"],
        "sample_unexpected_rows": result["sample_unexpected_rows"],
        "observed_value": result["observed_value"],
        "kwargs": _short_kwargs(kwargs),
        "notes": cfg.notes if isinstance(cfg.notes, str) else None,
        "exception": result["exception"],
    }


def _severity(config) -> str:
    meta = config.meta or {}
    sev = meta.get("severity")
    if sev in (SEVERITY_ERROR, SEVERITY_WARN):
        return sev
    native = str(getattr(config, "severity", "") or "").lower()
    return SEVERITY_WARN if native.endswith(("warning", "info")) else SEVERITY_ERROR


def _observed(res: dict[str, Any]) -> Any:
    """Observed value; for column-set expectations the missing/unexpected columns are more useful."""
    mismatched = (res.get("details") or {}).get("mismatched") if isinstance(res.get("details"), dict) else None
    if isinstance(mismatched, dict) and mismatched:
        return {k: mismatched[k] for k in ("missing", "unexpected") if mismatched.get(k)}
    return res.get("observed_value")


def _sample_rows(index_list: Any) -> list[dict[str, Any]]:
    """Key columns of a few unexpected rows (GX gives dicts when unexpected_index_column_names is set)."""
    if not isinstance(index_list, list):
        return []
    return [jsonable(r) for r in index_list[:MAX_SAMPLES] if isinstance(r, dict)]


def _columns(kwargs: dict[str, Any]) -> list[str]:
    if "column" in kwargs:
        return [kwargs["column"]]
    if "column_A" in kwargs:
        return [kwargs["column_A"], kwargs["column_B"]]
    if "column_list" in kwargs:
        return list(kwargs["column_list"])
    return []


def _short_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    out = {}
    for k, v in kwargs.items():
        if k in ("batch_id", "column", "column_A", "column_B", "column_list"):
            continue
        if k == "row_condition" and v is not None:
            v = repr(v) if not isinstance(v, (str, dict)) else v
        if isinstance(v, (list, tuple, set)) and len(v) > 12:
            v = [*list(v)[:12], f"... ({len(v)} values)"]
        out[k] = jsonable(v)
    return out


def _short_observed(v: Any) -> Any:
    v = jsonable(v)
    if isinstance(v, list) and len(v) > 30:
        return [*v[:30], f"... ({len(v)} values)"]
    return v


def _exception_message(info: Any) -> str | None:
    if not info:
        return None
    if isinstance(info, dict) and "raised_exception" in info:
        infos = [info]
    elif isinstance(info, dict):
        infos = [v for v in info.values() if isinstance(v, dict)]
    else:
        infos = []
    messages = [str(i.get("exception_message")) for i in infos if i.get("raised_exception")]
    return "; ".join(dict.fromkeys(messages)) or None
