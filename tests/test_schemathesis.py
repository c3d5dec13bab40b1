"""Schemathesis against the API's own OpenAPI schema (issue 13 item 3): generated requests -- valid and invalid
-- on every operation find no server error and no answer that breaks the schema. Bounded: a fixed number of
examples per operation, derandomized so CI sees the same cases every run; the API runs with keys, as deployed."""

from __future__ import annotations

import pytest

schemathesis = pytest.importorskip("schemathesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402  (schemathesis brings hypothesis)

from schemathesis.specs.openapi.checks import positive_data_acceptance  # noqa: E402

from serving.api import create_app  # noqa: E402
from serving.api.keys import add_key  # noqa: E402
from settings import Settings  # noqa: E402

MAX_EXAMPLES = 30


@pytest.fixture(scope="module")
def api_key(tmp_path_factory):
    keys_file = tmp_path_factory.mktemp("schemathesis") / "keys.json"
    return keys_file, add_key(keys_file, "schemathesis", "read,predict")[1]


@pytest.fixture(scope="module")
def api_schema(pipeline_warehouse, api_key):
    """The API as deployed: with keys (schemathesis also checks that invalid keys are refused)."""
    settings_ = Settings.from_env({"DATA_DIR": str(pipeline_warehouse.data_dir), "API_RATE_LIMIT_PER_MIN": "0",
                                   "API_KEYS_FILE": str(api_key[0])})
    return schemathesis.openapi.from_asgi("/openapi.json", create_app(pipeline_warehouse.published,
                                                                      settings=settings_))


def operation_ids() -> list[str]:
    return ["GET /health", "GET /stores", "GET /stores/{store_id}", "GET /stores/{store_id}/forecast",
            "GET /stores/{store_id}/forecast/monthly", "GET /models", "POST /predict"]


def test_the_schema_lists_every_operation(api_schema):
    found = {f"{op.ok().method.upper()} {op.ok().path}" for op in api_schema.get_all_operations()}
    assert found == set(operation_ids())


@pytest.mark.parametrize("operation", operation_ids())
def test_no_server_error_and_no_schema_violation(api_schema, api_key, operation):
    method, path = operation.split(" ")
    strategy = api_schema[path][method].as_strategy()

    @given(case=strategy)
    @settings(max_examples=MAX_EXAMPLES, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def check(case):
        # Every check but "a schema-valid request is accepted": the API rightly refuses some requests the schema
        # cannot describe (start after end; a predict date outside 1990..2100), each with a 422 naming the field.
        case.call_and_validate(headers={"Authorization": f"Bearer {api_key[1]}"},
                               excluded_checks=[positive_data_acceptance])

    check()
