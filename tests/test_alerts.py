"""Alerts reach a real HTTP server on loopback; a dead or failing webhook costs retries, never an exception, and the
alert is in DATA_DIR/alerts.jsonl whatever happens to the delivery."""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from monitoring import alerts
from monitoring.alerts import send_alert
from settings import Settings


class _Recorder(ThreadingHTTPServer):
    def __init__(self, status: int):
        self.status, self.bodies = status, []
        super().__init__(("127.0.0.1", 0), _Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/hook"


class _Handler(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.server.bodies.append((self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.server.status)
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook(request):
    servers = []

    def start(status: int = 200) -> _Recorder:
        server = _Recorder(status)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def _closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/hook"  # nobody listens there any more: connection refused


def _lines(settings: Settings) -> list[dict]:
    return [json.loads(line) for line in settings.alerts_path.read_text().splitlines()]


def test_alert_reaches_every_webhook_with_text_and_fields(tmp_path, webhook):
    first, second = webhook(), webhook()
    settings = Settings(data_dir=tmp_path / "data", alert_webhook_urls=(first.url, second.url))

    delivered = send_alert("check_failure", "coverage_80 is 0.52 (band 0.7..0.9)",
                           {"severity": "WARN", "run_id": "r-1", "check": "interval_coverage",
                            "asset": "marts/fct_forecast_vs_actual", "value": 0.52}, settings)

    assert delivered == {first.url: True, second.url: True}
    for server in (first, second):
        [(content_type, body)] = server.bodies
        assert content_type == "application/json"
        assert body["text"] == "coverage_80 is 0.52 (band 0.7..0.9)"
        assert {k: body[k] for k in ("kind", "severity", "run_id", "check", "asset", "value", "data_dir")} == {
            "kind": "check_failure", "severity": "WARN", "run_id": "r-1", "check": "interval_coverage",
            "asset": "marts/fct_forecast_vs_actual", "value": 0.52, "data_dir": "data"}
        assert body["at"].endswith("+00:00")
    [line] = _lines(settings)
    assert line == first.bodies[0][1]


def test_unreachable_and_failing_webhooks_retry_and_never_raise(tmp_path, webhook, monkeypatch, caplog):
    monkeypatch.setattr(alerts, "RETRY_BACKOFF_S", 0.01)
    failing, healthy = webhook(status=500), webhook()
    dead = _closed_port_url()
    settings = Settings(data_dir=tmp_path / "data", alert_webhook_urls=(dead, failing.url, healthy.url),
                        alert_timeout_s=2, alert_retries=2)

    delivered = send_alert("step_failure", "models__lstm failed: boom", {"run_id": "r-2"}, settings)

    assert delivered == {dead: False, failing.url: False, healthy.url: True}
    assert len(failing.bodies) == 3  # the first try and two retries
    assert len(healthy.bodies) == 1
    assert sum("try 3 of 3" in r.getMessage() and dead in r.getMessage() for r in caplog.records) == 1
    [line] = _lines(settings)
    assert (line["kind"], line["text"], line["run_id"]) == ("step_failure", "models__lstm failed: boom", "r-2")


def test_alerts_append_one_line_each_without_webhooks(tmp_path):
    settings = Settings(data_dir=tmp_path / "data")
    assert send_alert("run_failure", "first", None, settings) == {}
    send_alert("run_failure", "second", {"severity": "ERROR"}, settings)
    assert [(line["text"], line["severity"]) for line in _lines(settings)] == [("first", None), ("second", "ERROR")]


def test_settings_read_the_alert_variables():
    settings = Settings.from_env({"DATA_DIR": "/tmp/x", "ALERT_WEBHOOK_URLS": " http://a/1 ,, http://b/2 ",
                                  "ALERT_TIMEOUT_S": "1.5", "ALERT_RETRIES": "0"})
    assert settings.alert_webhook_urls == ("http://a/1", "http://b/2")
    assert (settings.alert_timeout_s, settings.alert_retries) == (1.5, 0)
    assert Settings.from_env({}).alert_webhook_urls == ()
