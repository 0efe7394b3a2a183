"""Property-based fuzzing of the whole HTTP API from its own /openapi.json (schemathesis).

Every operation gets a bounded number of generated requests, valid and invalid, sent with an
admin token to the Flask app over a real SQLite database. No answer may be a 5xx, and every
answer must match the documented status codes, content types and response schemas.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.app import create_app
from api.openapi import openapi_document
from engine.definitions.compile import SourceFile
from tests.integration.conftest import make_container

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "approval.bpmn"
EXAMPLES_PER_OPERATION = 30
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]


@pytest.fixture(scope="module")
def flowgate(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, str]]:
    tmp = tmp_path_factory.mktemp("fuzz")
    # Fuzzing must not trip the per-key rate limit; that has its own test.
    container = make_container(f"sqlite:///{tmp / 'flowgate.db'}", tmp, rate_limit_per_minute=0)
    with container.runtime.uow() as uow:
        container.runtime.catalog.deploy(
            uow, [SourceFile("approval.bpmn", FIXTURE.read_bytes())], "t"
        )
        uow.commit()
    app = create_app(container=container)
    yield app, container.tokens.issue("fuzzer", ["admin"])
    container.close()


@pytest.fixture(scope="module")
def target(flowgate) -> dict[str, object]:
    """Where and how to call: this app in-process, as admin.

    The schema is the document the app serves at /openapi.json (checked here); it is loaded at
    import time because schemathesis' lazy fixture loader does not support pytest 9.
    """
    app, token = flowgate
    assert app.test_client().get("/openapi.json").json == openapi_document()
    return {"app": app, "headers": {"Authorization": f"Bearer {token}"}}


schema = schemathesis.openapi.from_dict(openapi_document())


@schema.parametrize()
@settings(
    max_examples=EXAMPLES_PER_OPERATION,
    deadline=None,
    database=None,
    suppress_health_check=list(HealthCheck),
)
def test_no_generated_request_gets_a_5xx_or_an_answer_outside_the_schema(case, target):
    case.call_and_validate(checks=CHECKS, **target)
