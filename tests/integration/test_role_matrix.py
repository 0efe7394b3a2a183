"""Generated from the role matrix (api/permissions.py): every endpoint by every role.

An allowed role gets past authorisation (any answer but 401/403: a dummy id may well be 404,
an empty body 400); a refused role gets 403; no token gets 401. A new endpoint that is missing
from the matrix fails test_every_endpoint_is_in_the_role_matrix (tests/integration).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from api.app import create_app
from api.permissions import ANY, APPROVERS, PERMISSIONS, PUBLIC
from tests.integration.conftest import make_container

ROLES = sorted({"admin", "analyst", "erp_system", "auditor", *APPROVERS})


@pytest.fixture(scope="module")
def harness(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[object, dict, list]]:
    tmp: Path = tmp_path_factory.mktemp("matrix")
    container = make_container(f"sqlite:///{tmp / 'flowgate.db'}", tmp, rate_limit_per_minute=0)
    app = create_app(container=container)
    tokens = {
        role: container.tokens.create_key(f"k-{role}", [role])
        if role == "erp_system"
        else container.tokens.issue(f"u-{role}", [role], [role] if role in APPROVERS else [])
        for role in ROLES
    }
    routes = [
        (rule.endpoint, sorted(rule.methods - {"HEAD", "OPTIONS"})[0], rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint != "static" and PERMISSIONS.get(rule.endpoint) != PUBLIC
    ]
    yield app, tokens, routes
    container.close()


def expected_allowed(endpoint: str, role: str) -> bool:
    rule = PERMISSIONS[endpoint]
    return role == "admin" or rule == ANY or role in rule


@pytest.mark.parametrize("role", ROLES)
def test_each_role_gets_exactly_the_endpoints_the_matrix_gives_it(harness, role):
    app, tokens, routes = harness
    client = app.test_client()
    wrong = []
    for endpoint, method, rule in routes:
        path = re.sub(r"<(?:\w+(?:\([^)]*\))?:)?(\w+)>", "1", rule)
        response = client.open(
            path,
            method=method,
            headers={"Authorization": f"Bearer {tokens[role]}"},
            json={} if method in {"POST", "PUT", "PATCH"} else None,
        )
        allowed = expected_allowed(endpoint, role)
        if allowed and response.status_code in (401, 403):
            wrong.append(f"{method} {path}: {response.status_code}, the matrix allows {role}")
        if not allowed and response.status_code != 403:
            wrong.append(f"{method} {path}: {response.status_code}, the matrix refuses {role}")
    assert wrong == []
    assert len(routes) >= 30
