"""Sensitive variables (bank accounts, licence numbers, contact data) are masked in API answers
for roles without the right to see them; which names are sensitive is configuration."""

from __future__ import annotations

from pathlib import Path

import pytest

from api.app import create_app
from engine.definitions.compile import SourceFile
from tests.integration.conftest import make_container

VARIABLES = {
    "amount": 5000,
    "approval_timeout": "P1D",
    "supplier": {"name": "Acme", "bank_account": "CN4401234567890123", "iban": "DE89370400440532"},
    "customer": {"license_no": "YL-2026-000123", "contact_email": "li@hospital.cn"},
}


def start(container, **settings):
    client = create_app(container=container).test_client()
    with container.runtime.uow() as uow:
        container.runtime.catalog.deploy(
            uow,
            [
                SourceFile(
                    "approval.bpmn",
                    (Path(__file__).parents[1] / "fixtures" / "approval.bpmn").read_bytes(),
                )
            ],
            "t",
        )
        uow.commit()
    erp = {"Authorization": f"Bearer {container.tokens.create_key('erp', ['erp_system'])}"}
    body = client.post(
        "/api/v1/processes/approval/instances",
        headers=erp,
        json={"business_key": "SO-9", "variables": VARIABLES},
    ).json
    return client, body


def variables_seen_by(container, client, instance_id: str, roles: list[str]) -> dict:
    token = container.tokens.issue("someone", roles, roles)
    response = client.get(
        f"/api/v1/instances/{instance_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 200
    return response.json["variables"]


def test_an_approver_sees_bank_licence_and_contact_data_masked(container):
    client, instance = start(container)
    seen = variables_seen_by(container, client, instance["id"], ["credit_manager"])
    assert seen["supplier"] == {"name": "Acme", "bank_account": "***0123", "iban": "***0532"}
    assert seen["customer"] == {"license_no": "***0123", "contact_email": "***l.cn"}
    assert seen["amount"] == 5000


@pytest.mark.parametrize("roles", [["auditor"], ["admin"]])
def test_auditor_and_admin_see_the_values(container, roles):
    client, instance = start(container)
    seen = variables_seen_by(container, client, instance["id"], roles)
    assert seen["supplier"]["bank_account"] == "CN4401234567890123"
    assert seen["customer"]["contact_email"] == "li@hospital.cn"


def test_the_task_context_is_masked_too(container):
    client, instance = start(container)
    carol = container.tokens.issue("carol", ["credit_manager"], ["credit_manager"])
    task_id = instance["active_tasks"][0]["id"]
    response = client.get(f"/api/v1/tasks/{task_id}", headers={"Authorization": f"Bearer {carol}"})
    assert response.status_code == 200
    assert response.json["context"]["supplier"]["bank_account"] == "***0123"
    assert "CN4401234567890123" not in response.get_data(as_text=True)


def test_which_names_are_sensitive_and_who_may_see_them_is_configuration(database_url, tmp_path):
    container = make_container(
        database_url, tmp_path, sensitive_variables=("amount",), unmasked_roles=("cfo",)
    )
    try:
        client, instance = start(container)
        as_approver = variables_seen_by(container, client, instance["id"], ["credit_manager"])
        assert as_approver["amount"] == "***"
        assert as_approver["supplier"]["bank_account"] == "CN4401234567890123"
        as_auditor = variables_seen_by(container, client, instance["id"], ["auditor"])
        assert as_auditor["amount"] == "***"
        assert variables_seen_by(container, client, instance["id"], ["cfo"])["amount"] == 5000
    finally:
        container.close()
