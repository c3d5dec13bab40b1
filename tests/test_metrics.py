"""Observability (issue 13 item 4): one JSON log line per request, Prometheus text at /metrics, the pipeline's
textfile metrics, and the alert rules (promtool when Debian's prometheus package is installed)."""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import textwrap
from pathlib import Path

import pytest
import yaml
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from serving.api import create_app
from serving.api.keys import add_key
from serving.api.observe import ACCESS_LOG
from monitoring.metrics import write_pipeline_textfile
from serving.reader import read_publication
from settings import Settings

RULES = Path(__file__).resolve().parents[1] / "deploy" / "prometheus" / "alert_rules.yml"


def samples(text: str) -> dict[str, list]:
    """Prometheus text as metric name -> samples (parsed by prometheus_client: malformed text raises)."""
    out: dict[str, list] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, []).append(sample)
    return out


@pytest.fixture
def keyed(pipeline_warehouse, tmp_path):
    keys_file = tmp_path / "keys.json"
    record, key = add_key(keys_file, "ops", "read,predict")
    settings = Settings.from_env({"DATA_DIR": str(tmp_path), "API_KEYS_FILE": str(keys_file)})
    with TestClient(create_app(pipeline_warehouse.published, settings=settings)) as c:
        c.headers["Authorization"] = f"Bearer {key}"
        yield c, record, key


def test_metrics_count_requests_latency_and_predictions(keyed, pipeline_warehouse):
    c, _, _ = keyed
    for store in (1, 2, 999):
        c.get(f"/stores/{store}/forecast")
    c.post("/predict", json=[{"store": 1, "date": "2015-08-03"}, {"store": 2, "date": "2015-08-04"}])
    r = c.get("/metrics")
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
    found = samples(r.text)
    counts = {(s.labels["route"], s.labels["status"]): s.value for s in found["api_requests_total"]}
    assert counts[("/stores/{store_id}/forecast", "200")] == 2, "routes are path templates, not raw paths"
    assert counts[("/stores/{store_id}/forecast", "404")] == 1
    assert counts[("/predict", "200")] == 1
    buckets = [s for s in found["api_request_duration_seconds_bucket"]
               if s.labels["route"] == "/stores/{store_id}/forecast" and s.labels["status"] == "200"]
    assert {s.labels["le"] for s in buckets} >= {"0.025", "+Inf"}
    assert max(s.value for s in buckets) == 2
    (predicted,) = found["api_predictions_total"]
    assert predicted.value == 2 and predicted.labels["model"]
    (age,) = found["api_published_version_age_seconds"]
    assert age.labels["version"] == read_publication(pipeline_warehouse.published).version_id and age.value > 0
    assert c.get("/metrics", headers={"Authorization": ""}).status_code == 401, "metrics need a read key"


def test_one_json_log_line_per_request(keyed, caplog):
    c, record, key = keyed
    with caplog.at_level(logging.INFO, logger=ACCESS_LOG):
        r = c.get("/stores/3", headers={"X-Request-ID": "trace-42"})
        c.get("/stores", headers={"Authorization": "Bearer wrong"})
    assert r.headers["x-request-id"] == "trace-42"
    lines = [json.loads(rec.getMessage()) for rec in caplog.records if rec.name == ACCESS_LOG]
    assert len(lines) == 2
    ok, refused = lines
    assert ok["request_id"] == "trace-42" and ok["key_id"] == record.id and ok["route"] == "/stores/{store_id}"
    assert ok["status"] == 200 and ok["latency_ms"] > 0 and ok["published_version"]
    assert refused["status"] == 401 and refused["key_id"] is None and len(refused["request_id"]) == 32
    assert key not in caplog.text, "the key itself is never logged"


def test_pipeline_textfile(tmp_path):
    path = write_pipeline_textfile(
        tmp_path / "metrics" / "pipeline.prom", run_id="run-1", succeeded=True, duration_s=123.4,
        rows={"ml.store_sales_forecast": 1260}, champion="hist_gradient_boosting",
        model_metrics=[("hist_gradient_boosting", "validation", "rmspe", 0.102),
                       ("random_forest", "validation", "rmspe", 0.109)])
    found = samples(path.read_text())
    assert found["pipeline_run_duration_seconds"][0].value == 123.4
    assert found["pipeline_last_run_success"][0].labels["run_id"] == "run-1"
    assert found["pipeline_table_rows"][0].labels["table"] == "ml.store_sales_forecast"
    assert len(found["pipeline_model_metric"]) == 2
    (champion,) = found["pipeline_champion_rmspe"]
    assert champion.value == 0.102 and champion.labels["model"] == "hist_gradient_boosting"
    assert list(tmp_path.joinpath("metrics").iterdir()) == [path], "written atomically, no temporary left"


def test_alert_rules_parse_and_cover_the_issue():
    rules = yaml.safe_load(RULES.read_text())
    alerts = {r["alert"]: r for g in rules["groups"] for r in g["rules"]}
    assert {"ForecastApiErrorRate", "ForecastApiLatencyP99", "PublishedVersionStale",
            "ForecastAccuracyDegraded"} <= set(alerts)
    assert "0.025" in alerts["ForecastApiLatencyP99"]["expr"]
    for alert in alerts.values():
        assert alert["expr"].strip() and alert["annotations"]["summary"]


promtool = pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool (Debian's prometheus) not installed")


@promtool
def test_promtool_checks_the_rules():
    run = subprocess.run(["promtool", "check", "rules", str(RULES)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr


@promtool
def test_the_alerts_fire_on_the_metrics_we_export(tmp_path):
    """promtool's rule unit tests on series named like those /metrics and the textfile export."""
    tests = tmp_path / "alert_rules_test.yml"
    errors_description = next(r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]
                              if r["alert"] == "ForecastApiErrorRate")["annotations"]["description"]
    tests.write_text(textwrap.dedent(f"""\
        rule_files: ["{RULES}"]
        evaluation_interval: 1m
        tests:
          - interval: 1m
            input_series:
              - series: 'api_requests_total{{method="GET",route="/stores",status="200"}}'
                values: '0+100x30'
              - series: 'api_requests_total{{method="GET",route="/stores",status="500"}}'
                values: '0+5x30'
              - series: 'api_request_duration_seconds_bucket{{method="GET",route="/stores",status="200",le="0.025"}}'
                values: '0+50x30'
              - series: 'api_request_duration_seconds_bucket{{method="GET",route="/stores",status="200",le="0.05"}}'
                values: '0+100x30'
              - series: 'api_request_duration_seconds_bucket{{method="GET",route="/stores",status="200",le="+Inf"}}'
                values: '0+100x30'
              - series: 'api_published_version_age_seconds{{version="v1"}}'
                values: '200000+60x30'
              - series: 'pipeline_champion_rmspe{{model="hist_gradient_boosting"}}'
                values: '0.10x10 0.15x80'
            alert_rule_test:
              - eval_time: 25m
                alertname: ForecastApiErrorRate
                exp_alerts:
                  - exp_labels: {{severity: page}}
                    exp_annotations:
                      summary: "Forecast API answers 4.762% of requests with a server error"
                      description: "{errors_description}"
              - eval_time: 25m
                alertname: ForecastApiLatencyP99
                exp_alerts:
                  - exp_labels: {{severity: warn, route: /stores}}
                    exp_annotations: {{summary: "p99 latency of /stores is 49.5ms (objective 25 ms)"}}
              - eval_time: 25m
                alertname: PublishedVersionStale
                exp_alerts:
                  - exp_labels: {{severity: warn}}
                    exp_annotations: {{summary: "The API serves a published version 2d 7h 58m 20s old"}}
              - eval_time: 85m
                alertname: ForecastAccuracyDegraded
                exp_alerts:
                  - exp_labels: {{severity: warn}}
                    exp_annotations: {{summary: "Champion validation RMSPE is 0.15 (threshold 0.2 or +25% over 30 days)"}}
              - eval_time: 5m
                alertname: ForecastAccuracyDegraded
                exp_alerts: []
        """))
    run = subprocess.run(["promtool", "test", "rules", str(tests)], capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stdout + run.stderr
