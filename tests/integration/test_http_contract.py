"""The HTTP layer over a real database: the role matrix, problem+json, auth."""

from __future__ import annotations

import re

import pytest

from api.app import create_app
from api.permissions import PERMISSIONS, PUBLIC


@pytest.fixture
def client(container):
    return create_app(container=container).test_client()


def test_every_endpoint_is_in_the_role_matrix(container):
    app = create_app(container=container)
    endpoints = {rule.endpoint for rule in app.url_map.iter_rules() if rule.endpoint != "static"}
    assert endpoints - set(PERMISSIONS) == set()


def test_every_protected_endpoint_refuses_a_missing_token(container, client):
    app = create_app(container=container)
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or PERMISSIONS.get(rule.endpoint) == PUBLIC:
            continue
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", "1", rule.rule)
        method = sorted(rule.methods - {"HEAD", "OPTIONS"})[0]
        response = client.open(path, method=method)
        assert response.status_code == 401, (method, path)
        assert response.mimetype == "application/problem+json"


def test_wrong_role_gets_403_and_right_role_passes(container, client):
    carol = container.tokens.issue("carol", ["credit_manager"], ["credit_manager"])
    analyst = container.tokens.issue("ann", ["analyst"])
    response = client.get("/api/v1/definitions", headers={"Authorization": f"Bearer {carol}"})
    assert response.status_code == 200
    response = client.post("/api/v1/definitions", headers={"Authorization": f"Bearer {carol}"})
    assert response.status_code == 403
    response = client.post("/api/v1/definitions", headers={"Authorization": f"Bearer {analyst}"})
    assert response.status_code == 400  # allowed, but no file uploaded


def test_revoked_or_unknown_api_key_is_401(container, client):
    key = container.tokens.create_key("erp", ["erp_system"])
    ok = client.get("/api/v1/instances", headers={"Authorization": f"Bearer {key}"})
    assert ok.status_code == 200
    bad = client.get("/api/v1/instances", headers={"Authorization": f"Bearer {key}x"})
    assert bad.status_code == 401


def test_oversized_body_is_413(container, client):
    erp = container.tokens.create_key("erp", ["erp_system"])
    response = client.post(
        "/api/v1/messages",
        data=b"x" * (5 * 1024 * 1024),
        headers={"Authorization": f"Bearer {erp}", "Content-Type": "application/json"},
    )
    assert response.status_code == 413
