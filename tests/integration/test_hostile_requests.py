"""Hostile request bodies and floods: nesting bombs get 400, floods of one key get 429."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from tests.integration.conftest import make_container


@pytest.fixture
def client(container):
    return create_app(container=container).test_client()


@pytest.fixture
def erp(container) -> dict[str, str]:
    return {"Authorization": f"Bearer {container.tokens.create_key('erp', ['erp_system'])}"}


def nested(depth: int) -> str:
    return '{"name": "m", "payload": ' + '{"a": ' * depth + "1" + "}" * depth + "}"


def test_json_nested_past_the_limit_is_400_naming_the_body(client, erp):
    response = client.post(
        "/api/v1/messages", headers=erp, data=nested(40), content_type="application/json"
    )
    assert response.status_code == 400
    assert response.json["errors"] == [{"field": "body", "message": "nesting exceeds 32 levels"}]


def test_a_nesting_bomb_is_refused_whatever_its_declared_type(client, erp):
    bomb = "[" * 200_000 + "]" * 200_000
    for kind in ("application/json", "text/plain"):
        response = client.post("/api/v1/messages", headers=erp, data=bomb, content_type=kind)
        assert response.status_code == 400, kind
        assert response.mimetype == "application/problem+json"


def test_brackets_inside_strings_do_not_count_as_nesting(client, erp):
    body = {"name": "m", "correlation_key": "K", "payload": {"note": "[{" * 100 + '\\"'}}
    response = client.post("/api/v1/messages", headers=erp, json=body)
    assert response.status_code == 202, response.json


def test_nesting_within_the_limit_is_accepted(client, erp):
    response = client.post(
        "/api/v1/messages", headers=erp, data=nested(30), content_type="application/json"
    )
    assert response.status_code == 202, response.json


@pytest.mark.parametrize(
    "body",
    [
        b"not json",
        b"[1, 2]",
        b'"text"',
        b"\xff\xfe",
        b'{"name": 5}',
        b'{"name": "m", "payload": []}',
    ],
)
def test_malformed_bodies_are_400_not_500(client, erp, body):
    response = client.post(
        "/api/v1/messages", headers=erp, data=body, content_type="application/json"
    )
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"


def test_a_flooding_key_gets_429_with_retry_after_and_others_carry_on(
    database_url: str, tmp_path: Path
):
    container = make_container(database_url, tmp_path, rate_limit_per_minute=5)
    try:
        client = create_app(container=container).test_client()
        flood = {"Authorization": f"Bearer {container.tokens.create_key('a', ['erp_system'])}"}
        calm = {"Authorization": f"Bearer {container.tokens.create_key('b', ['erp_system'])}"}
        message = {"name": "m", "correlation_key": "K", "payload": {}}
        codes = [
            client.post("/api/v1/messages", headers=flood, json=message).status_code
            for _ in range(7)
        ]
        assert codes == [202] * 5 + [429] * 2
        refused = client.post("/api/v1/messages", headers=flood, json=message)
        assert refused.mimetype == "application/problem+json"
        assert int(refused.headers["Retry-After"]) >= 1
        assert client.post("/api/v1/messages", headers=calm, json=message).status_code == 202
        # Reading is not an ERP hook: the flooding key may still look at instances.
        assert client.get("/api/v1/instances", headers=flood).status_code == 200
    finally:
        container.close()


def test_a_request_id_is_returned_and_a_forged_one_replaced(client, erp):
    response = client.get("/api/v1/instances", headers={**erp, "X-Request-Id": "abc-123"})
    assert response.headers["X-Request-Id"] == "abc-123"
    forged = "<script>" + "x" * 100
    replaced = client.get("/api/v1/instances", headers={**erp, "X-Request-Id": forged})
    assert replaced.headers["X-Request-Id"] != forged
    assert replaced.headers["X-Request-Id"].isalnum()
