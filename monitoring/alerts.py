"""Alerts: one JSON message per failed run step or failed monitoring check.

Every alert is first appended to ``DATA_DIR/alerts.jsonl`` (one line, one write), then POSTed to each URL of
``ALERT_WEBHOOK_URLS``. The body is ``{"text": ..., <structured fields>}``: Slack's and Teams' incoming webhooks
show ``text`` and ignore the rest; other receivers get the fields. Delivery has a timeout and retries and never
raises: an unreachable webhook must not fail the pipeline that is reporting a problem.
"""

from __future__ import annotations

import json
import logging
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from datetime import datetime, timezone
from typing import Any

from settings import Settings, restrict_permissions

log = logging.getLogger(__name__)

RETRY_BACKOFF_S = 0.5  # doubled after each failed try


def build_message(kind: str, text: str, fields: Mapping[str, Any], settings: Settings) -> dict[str, Any]:
    """The alert's body: ``text`` plus kind, severity, run_id, check, asset, data_dir (its name) and at (UTC)."""
    message = {"text": text, "kind": kind, "severity": None, "run_id": None, "check": None, "asset": None,
               "data_dir": settings.data_dir.name, "at": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    message.update(fields)
    return message


def append_alert(message: Mapping[str, Any], settings: Settings) -> None:
    """One line in ``DATA_DIR/alerts.jsonl``, written with a single ``write`` on a file opened for appending, so
    concurrent writers never interleave inside a line."""
    settings.alerts_path.parent.mkdir(parents=True, exist_ok=True)
    line = json.dumps(message, default=str, ensure_ascii=False) + "\n"
    created = not settings.alerts_path.exists()
    with open(settings.alerts_path, "a", encoding="utf-8") as out:
        out.write(line)
    if created:  # alerts name stores, runs and errors: the platform's user and its reader group only
        restrict_permissions(settings.alerts_path, settings.platform_reader_group)


def post_json(url: str, message: Mapping[str, Any], timeout_s: float, retries: int) -> bool:
    """POST ``message`` to ``url``, up to ``1 + retries`` tries; True when one got a 2xx answer. Never raises."""
    body = json.dumps(message, default=str).encode()
    for attempt in range(1 + max(0, retries)):
        if attempt:
            time.sleep(RETRY_BACKOFF_S * 2 ** (attempt - 1))
        request = urllib.request.Request(url, data=body, method="POST",
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=timeout_s) as response:
                if 200 <= response.status < 300:
                    return True
                problem = f"HTTP {response.status}"
        except urllib.error.HTTPError as exc:
            problem = f"HTTP {exc.code}"
        except (urllib.error.URLError, OSError, ValueError) as exc:  # refused, timeout, DNS, malformed URL
            problem = str(getattr(exc, "reason", exc))
        log.warning("alert webhook %s, try %d of %d: %s", url, attempt + 1, 1 + max(0, retries), problem)
    return False


def send_alert(kind: str, text: str, fields: Mapping[str, Any] | None, settings: Settings) -> dict[str, bool]:
    """Record the alert in ``DATA_DIR/alerts.jsonl``, then deliver it to every ``ALERT_WEBHOOK_URLS`` URL.

    ``kind``: what happened (``step_failure``, ``run_failure``, ``check_failure``); ``fields``: the structured
    fields (severity, run_id, check, asset, ... and any others). Returns each URL's delivery result; never raises
    (a failure to write the file is logged too).
    """
    message = build_message(kind, text, fields or {}, settings)
    try:
        append_alert(message, settings)
    except OSError as exc:
        log.warning("could not append the alert to %s: %s", settings.alerts_path, exc)
    delivered = {url: post_json(url, message, settings.alert_timeout_s, settings.alert_retries)
                 for url in settings.alert_webhook_urls}
    for url, ok in delivered.items():
        if not ok:
            log.warning("alert %r not delivered to %s (it is in %s)", text, url, settings.alerts_path)
    return delivered
