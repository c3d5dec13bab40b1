"""API limits (issue 13 item 3): per-caller rate limit (429 + Retry-After), the POST /predict row cap (413 naming
the limit), query timeouts (504), gzip for large answers. The body cap (413) is in tests/test_api.py."""

from __future__ import annotations

import gzip
import time
from dataclasses import replace

import pytest
from fastapi.testclient import TestClient

from serving.api import create_app
from serving.api.dependencies import Reader
from serving.api.keys import add_key
from serving.api.security import RateLimiter
from serving.reader import PublishedReader, QueryTimeout
from settings import Settings

SLOW_SQL = "SELECT count(*) FROM range(10000000000) a"  # minutes of work: only an interrupt ends it early


def settings_for(tmp_path, **overrides) -> Settings:
    return replace(Settings.from_env({"DATA_DIR": str(tmp_path)}), **overrides)


def test_rate_limit_per_key_answers_429_with_retry_after(pipeline_warehouse, tmp_path):
    keys_file = tmp_path / "keys.json"
    _, first = add_key(keys_file, "first", "read")
    _, second = add_key(keys_file, "second", "read")
    settings = settings_for(tmp_path, api_keys_file=keys_file, api_rate_limit_per_min=3)
    with TestClient(create_app(pipeline_warehouse.published, settings=settings)) as c:
        for _ in range(3):
            assert c.get("/stores/1", headers={"Authorization": f"Bearer {first}"}).status_code == 200
        r = c.get("/stores/1", headers={"Authorization": f"Bearer {first}"})
        assert r.status_code == 429 and "API_RATE_LIMIT_PER_MIN" in r.json()["detail"]
        assert 1 <= int(r.headers["retry-after"]) <= 20  # 3 a minute: one token every 20 s
        assert c.get("/stores/1", headers={"Authorization": f"Bearer {second}"}).status_code == 200, \
            "each key has its own budget"


def test_rate_limit_per_client_address_when_open(pipeline_warehouse, tmp_path):
    with TestClient(create_app(pipeline_warehouse.published,
                               settings=settings_for(tmp_path, api_rate_limit_per_min=2))) as c:
        assert [c.get("/health").status_code for _ in range(3)] == [200, 200, 429]
    with TestClient(create_app(pipeline_warehouse.published,
                               settings=settings_for(tmp_path, api_rate_limit_per_min=0))) as c:
        assert {c.get("/health").status_code for _ in range(20)} == {200}, "0 turns the limit off"


def test_token_bucket_refills():
    limiter = RateLimiter(per_min=600)  # 10 a second
    assert all(limiter.retry_after("a") is None for _ in range(600))
    assert limiter.retry_after("a") == 1
    time.sleep(0.25)
    assert limiter.retry_after("a") is None, "a token came back after 0.1 s"


def test_predict_row_cap_is_configurable_and_named(pipeline_warehouse, tmp_path):
    with TestClient(create_app(pipeline_warehouse.published,
                               settings=settings_for(tmp_path, api_predict_max_rows=2))) as c:
        rows = [{"store": 1, "date": "2015-08-03"}, {"store": 2, "date": "2015-08-03"}]
        assert c.post("/predict", json=rows).status_code == 200
        r = c.post("/predict", json=rows + rows[:1])
        assert r.status_code == 413
        assert r.json()["detail"] == ("POST /predict takes at most 2 store-days (API_PREDICT_MAX_ROWS); "
                                      "this request has 3.")


@pytest.mark.parametrize("mode", ["cached", "per_request"])
def test_a_slow_query_is_interrupted(pipeline_warehouse, tmp_path, mode):
    reader = PublishedReader(pipeline_warehouse.published, mode,
                             settings=settings_for(tmp_path, serving_query_timeout_s=0.3))
    started = time.monotonic()
    with pytest.raises(QueryTimeout, match="SERVING_QUERY_TIMEOUT_S"):
        with reader.session() as s:
            s.con.execute(SLOW_SQL).fetchall()
    assert time.monotonic() - started < 5
    with reader.session() as s:  # the reader still answers
        assert s.con.execute("SELECT count(*) FROM marts.dim_stores").fetchall()[0][0] == pipeline_warehouse.n_stores


def test_a_request_past_the_query_timeout_is_504(pipeline_warehouse, tmp_path):
    app = create_app(pipeline_warehouse.published, settings=settings_for(tmp_path, serving_query_timeout_s=0.3))

    @app.get("/slow")  # a route like the real ones, with a query no real route makes slow on this small data
    def slow(reader: Reader) -> dict:
        with reader.session() as s:
            return {"n": s.con.execute(SLOW_SQL).fetchall()[0][0]}

    with TestClient(app, raise_server_exceptions=False) as c:
        r = c.get("/slow")
        assert r.status_code == 504 and "SERVING_QUERY_TIMEOUT_S" in r.json()["detail"], r.text
        assert c.get("/stores/1").status_code == 200


def test_large_answers_are_gzipped(pipeline_warehouse, tmp_path):
    with TestClient(create_app(pipeline_warehouse.published, settings=settings_for(tmp_path))) as c:
        r = c.get("/stores/1/forecast", headers={"Accept-Encoding": "gzip"})
        assert r.status_code == 200 and r.headers["content-encoding"] == "gzip"
        assert len(r.json()["rows"]) > 0
        raw = c.get("/stores/1/forecast", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in raw.headers
        small = c.get("/health", headers={"Accept-Encoding": "gzip"})
        assert "content-encoding" not in small.headers, "small answers are sent as they are"
        assert len(gzip.compress(raw.content)) < len(raw.content)
