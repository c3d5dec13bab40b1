"""Schemathesis against the API's own OpenAPI schema (issue 13 item 3): generated requests -- valid and invalid
-- on every operation find no server error and no answer that breaks the schema. Bounded: a fixed number of
examples per operation, derandomized so CI sees the same cases every run."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, settings  # noqa: E402  (schemathesis brings hypothesis)

from serving.api import create_app  # noqa: E402
from settings import Settings  # noqa: E402

MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def api_schema(pipeline_warehouse):
    settings_ = Settings.from_env({"DATA_DIR": str(pipeline_warehouse.data_dir), "API_RATE_LIMIT_PER_MIN": "0"})
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(pipeline_warehouse.published,
                                                                      settings=settings_))


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large,
                                 HealthCheck.function_scoped_fixture])
def test_no_server_error_and_no_schema_violation(case):
    case.call_and_validate()
