"""The audit trail: every change is recorded with who, when, what, before and after, chained by
SHA-256, and an edit made directly in the database is found at the row that was edited."""

from __future__ import annotations

import itertools
import json
import threading
from io import BytesIO
from typing import Any

import pytest
from sqlalchemy import String, func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Mapped, mapped_column

from api.app import create_app
from api.cli import main as cli_main
from engine.runtime import commands
from engine.store.audit import AuditEvent, acting_as, verify_chain
from engine.store.tables import Base
from tests.integration.conftest import ERP


class AuditProbe(Base):
    """A table from another package joining the trail through the `__audited__` hook."""

    __tablename__ = "audit_probe"
    __audited__ = True
    __audit_exclude__ = frozenset({"secret_note"})

    id: Mapped[str] = mapped_column(String(20), primary_key=True)
    status: Mapped[str] = mapped_column(String(20))
    secret_note: Mapped[str | None] = mapped_column(String(50))


@pytest.fixture
def client(container):
    return create_app(container=container).test_client()


@pytest.fixture
def tokens(container) -> dict[str, str]:
    issue = container.tokens.issue
    return {
        "analyst": issue("ann", ["analyst"]),
        "carol": issue("carol", ["credit_manager"], ["credit_manager"]),
        "auditor": issue("audrey", ["auditor"]),
        "erp": container.tokens.create_key("erp", ["erp_system"]),
    }


def call(client, who: str, tokens, method: str, path: str, **kwargs: Any):
    headers = {"Authorization": f"Bearer {tokens[who]}", **kwargs.pop("headers", {})}
    return client.open(path, method=method, headers=headers, **kwargs)


def deploy_and_start(client, tokens, approval_bpmn: bytes, business_key: str, **variables: Any):
    """Deploy the approval model as the analyst and start one instance as the ERP."""
    call(
        client,
        "analyst",
        tokens,
        "POST",
        "/api/v1/definitions",
        data={"file": (BytesIO(approval_bpmn), "approval.bpmn")},
    )
    return call(
        client,
        "erp",
        tokens,
        "POST",
        "/api/v1/processes/approval/instances",
        json={"business_key": business_key, "variables": {"amount": 5000, **variables}},
    )


def run_order(client, tokens, approval_bpmn: bytes, business_key: str = "SO-1") -> str:
    """Deploy, start, approve and pay one order over HTTP; returns the instance id."""
    started = deploy_and_start(client, tokens, approval_bpmn, business_key, approval_timeout="P1D")
    assert started.status_code == 201, started.json
    instance = started.json
    done = call(
        client,
        "carol",
        tokens,
        "POST",
        f"/api/v1/tasks/{instance['active_tasks'][0]['id']}/complete",
        json={"variables": {"decision": "approve"}},
    )
    assert done.status_code == 200, done.json
    paid = call(
        client,
        "erp",
        tokens,
        "POST",
        "/api/v1/messages",
        json={
            "name": "payment_received",
            "correlation_key": business_key,
            "payload": {"amount": "5000.00"},
        },
    )
    assert paid.status_code == 200, paid.json
    return instance["id"]


def trail(client, tokens, query: str = "") -> list[dict[str, Any]]:
    response = call(client, "auditor", tokens, "GET", f"/api/v1/audit?page_size=200{query}")
    assert response.status_code == 200, response.json
    return response.json["items"]


def tamper(container, statement: str) -> None:
    """What an attacker with database access does: switch the guard off, then edit."""
    with container.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            conn.execute(text("ALTER TABLE audit_event DISABLE TRIGGER USER"))
            conn.execute(text(statement))
            conn.execute(text("ALTER TABLE audit_event ENABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER audit_event_no_update"))
            conn.execute(text("DROP TRIGGER audit_event_no_delete"))
            conn.execute(text(statement))


def test_each_step_of_an_order_is_recorded_with_who_and_how(client, tokens, approval_bpmn):
    instance_id = run_order(client, tokens, approval_bpmn)
    events = trail(client, tokens, f"&entity=instance:{instance_id}")
    by_action = {e["action"]: e for e in events}
    assert {"instance_started", "task_completed", "message_received", "instance_completed"} <= set(
        by_action
    )
    assert by_action["instance_started"]["actor"] == "key:erp"
    assert by_action["instance_started"]["via"] == "api_key"
    assert by_action["instance_started"]["context"]["request"] == (
        "POST /api/v1/processes/approval/instances"
    )
    assert by_action["task_completed"]["actor"] == "carol"
    assert by_action["task_completed"]["via"] == "user_token"
    # Before and after: the instance's status moved from running to completed on payment.
    changed = [e for e in events if e["action"] == "instance_changed"]
    assert any(
        e["before"].get("status") == "running" and e["after"].get("status") == "completed"
        for e in changed
    )
    deployed = trail(client, tokens, "&entity=definition")
    assert [(e["action"], e["actor"], e["entity_id"]) for e in deployed] == [
        ("definition_deployed", "ann", "approval:1")
    ]
    assert "files" not in deployed[0]["after"]
    serialized = json.dumps(trail(client, tokens))
    for secret in tokens.values():
        assert secret not in serialized


def test_the_chain_links_every_event_to_the_one_before(client, tokens, approval_bpmn, container):
    run_order(client, tokens, approval_bpmn)
    events = trail(client, tokens)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[0]["prev_hash"] == "0" * 64
    assert all(b["prev_hash"] == a["hash"] for a, b in itertools.pairwise(events))
    verdict = call(client, "auditor", tokens, "GET", "/api/v1/audit/verify").json
    assert verdict["ok"] is True and verdict["checked"] == len(events)
    assert verdict["head"] == {"seq": events[-1]["seq"], "hash": events[-1]["hash"]}


def test_editing_an_audit_row_in_the_database_makes_verify_fail_at_that_row(
    client, tokens, approval_bpmn, container, database_url, monkeypatch, capsys
):
    run_order(client, tokens, approval_bpmn)
    approval = next(e for e in trail(client, tokens) if e["action"] == "task_completed")
    tamper(
        container,
        f"UPDATE audit_event SET actor = 'mallory' WHERE seq = {approval['seq']}",
    )
    verdict = call(client, "auditor", tokens, "GET", "/api/v1/audit/verify").json
    assert verdict["ok"] is False
    assert verdict["broken_at"] == approval["seq"]
    assert "edited" in verdict["reason"]
    assert verdict["head"]["seq"] == approval["seq"] - 1

    monkeypatch.setenv("FLOWGATE_DATABASE_URL", database_url)
    monkeypatch.setenv("FLOWGATE_SECRET_KEY", "test-secret-key")
    assert cli_main(["audit", "verify"]) == 1
    assert f"broken at seq {approval['seq']}" in capsys.readouterr().err


def test_a_deleted_audit_row_breaks_the_chain_where_it_was(
    client, tokens, approval_bpmn, container
):
    run_order(client, tokens, approval_bpmn)
    tamper(container, "DELETE FROM audit_event WHERE seq = 3")
    with container.runtime.uow(write=False) as uow:
        verdict = verify_chain(uow.session)
    assert (verdict.ok, verdict.broken_at) == (False, 4)
    assert "missing" in verdict.reason


def test_a_rewritten_hash_is_still_caught_by_the_next_link(
    client, tokens, approval_bpmn, container
):
    """Recomputing the edited row's own hash is not enough: the next row points at the old one."""
    from engine.store.audit import link_hash

    run_order(client, tokens, approval_bpmn)
    with container.runtime.uow(write=False) as uow:
        row = uow.session.get(AuditEvent, 2)
        row.actor = "mallory"
        forged = link_hash(row)
    tamper(container, f"UPDATE audit_event SET actor = 'mallory', hash = '{forged}' WHERE seq = 2")
    with container.runtime.uow(write=False) as uow:
        verdict = verify_chain(uow.session)
    assert (verdict.ok, verdict.broken_at) == (False, 3)


def test_the_audit_table_refuses_updates_and_deletes(client, tokens, approval_bpmn, container):
    run_order(client, tokens, approval_bpmn)
    for statement in ("UPDATE audit_event SET actor = 'x'", "DELETE FROM audit_event"):
        with pytest.raises(DBAPIError, match="append-only"), container.engine.begin() as conn:
            conn.execute(text(statement))


def test_a_refused_command_leaves_no_audit_event(client, tokens, approval_bpmn, container):
    run_order(client, tokens, approval_bpmn, "SO-1")
    before = len(trail(client, tokens))
    refused = call(
        client,
        "erp",
        tokens,
        "POST",
        "/api/v1/messages",
        json={"name": "payment_received", "correlation_key": "SO-1", "payload": {"amount": "1"}},
    )
    assert refused.status_code == 202  # buffered: that is a recorded change
    task_less = call(client, "carol", tokens, "POST", "/api/v1/tasks/nope/complete", json={})
    assert task_less.status_code == 404
    events = trail(client, tokens)
    assert [e["action"] for e in events[before:]] == ["message_buffered"]


def test_export_is_json_lines_filtered_by_entity_and_period(client, tokens, approval_bpmn):
    first = run_order(client, tokens, approval_bpmn, "SO-1")
    run_order(client, tokens, approval_bpmn, "SO-2")
    response = call(
        client,
        "auditor",
        tokens,
        "GET",
        f"/api/v1/audit/export?entity=instance:{first}&from=2000-01-01&to=2999-12-31",
    )
    assert response.status_code == 200
    assert response.mimetype == "application/x-ndjson"
    lines = [json.loads(line) for line in response.data.decode().splitlines()]
    assert lines and {e["entity_id"] for e in lines} == {first}
    assert lines == trail(client, tokens, f"&entity=instance:{first}")
    empty = call(client, "auditor", tokens, "GET", "/api/v1/audit/export?to=2000-01-01")
    assert empty.data == b""
    bad = call(client, "auditor", tokens, "GET", "/api/v1/audit?from=yesterday")
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "from"


def test_only_the_auditor_and_admin_read_the_trail(client, tokens, container):
    admin = container.tokens.issue("root", ["admin"])
    assert call(client, "carol", tokens, "GET", "/api/v1/audit").status_code == 403
    assert call(client, "erp", tokens, "GET", "/api/v1/audit/verify").status_code == 403
    assert call(client, "analyst", tokens, "GET", "/api/v1/audit/export").status_code == 403
    response = client.get("/api/v1/audit", headers={"Authorization": f"Bearer {admin}"})
    assert response.status_code == 200


def test_the_engine_steps_of_a_command_are_one_link_naming_each_element_and_history_row(
    client, tokens, approval_bpmn
):
    instance_id = run_order(client, tokens, approval_bpmn)
    links = [
        e
        for e in trail(client, tokens, f"&entity=instance:{instance_id}")
        if e["action"] == "elements_completed"
    ]
    instance = call(client, "auditor", tokens, "GET", f"/api/v1/instances/{instance_id}")
    steps = [e for e in instance.json["history"] if e["type"] == "element_completed"]
    # One link per command that ran steps (start, approval, payment), together naming every
    # step in the instance's history, in order, by its history row.
    assert len(links) == 3
    assert [i for link in links for i in link["after"]["event_ids"]] == [e["id"] for e in steps]
    assert [el for link in links for el in link["after"]["elements"]] == [
        e["element_id"] for e in steps
    ]


def test_revoking_a_key_is_audited_and_the_key_stops_working(
    client, tokens, container, database_url, monkeypatch, capsys
):
    monkeypatch.setenv("FLOWGATE_DATABASE_URL", database_url)
    monkeypatch.setenv("FLOWGATE_SECRET_KEY", "test-secret-key")
    assert call(client, "erp", tokens, "GET", "/api/v1/instances").status_code == 200
    assert cli_main(["key", "list"]) == 0
    listed = capsys.readouterr().out
    assert "erp\terp_system\tactive\tlast used 20" in listed
    assert cli_main(["key", "revoke", "--name", "erp"]) == 0
    assert call(client, "erp", tokens, "GET", "/api/v1/instances").status_code == 401
    revoked = trail(client, tokens, "&entity=api_key:erp")
    assert [e["action"] for e in revoked] == ["api_key_created", "api_key_revoked"]
    assert revoked[1]["via"] == "cli" and revoked[1]["actor"].startswith("cli")
    assert revoked[1]["before"] == {"revoked_at": None}
    assert "key_hash" not in revoked[0]["after"]
    assert cli_main(["key", "revoke", "--name", "nobody"]) == 1


def test_a_table_that_sets_audited_joins_the_trail(container):
    AuditProbe.__table__.create(container.engine)
    with acting_as("domain-test", "test"):
        with container.runtime.uow() as uow:
            uow.session.add(AuditProbe(id="JE-1", status="draft", secret_note="x"))
            uow.commit()
        with container.runtime.uow() as uow:
            uow.session.get(AuditProbe, "JE-1").status = "posted"
            uow.commit()
    with container.runtime.uow(write=False) as uow:
        rows = uow.session.execute(
            select(AuditEvent).where(AuditEvent.entity_type == "audit_probe")
        ).scalars()
        seen = [(r.action, r.entity_id, r.actor, r.before, r.after) for r in rows]
        assert verify_chain(uow.session).ok
    assert seen == [
        ("audit_probe_created", "JE-1", "domain-test", None, {"id": "JE-1", "status": "draft"}),
        ("audit_probe_updated", "JE-1", "domain-test", {"status": "draft"}, {"status": "posted"}),
    ]


def test_concurrent_commands_never_fork_the_chain(rt, container):
    errors: list[BaseException] = []

    def start(n: int) -> None:
        try:
            for i in range(5):
                commands.start(rt, "approval", f"SO-{n}-{i}", {"amount": 10}, ERP)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    with container.runtime.uow(write=False) as uow:
        count = uow.session.execute(select(func.count()).select_from(AuditEvent)).scalar_one()
        verdict = verify_chain(uow.session)
        started = uow.session.execute(
            select(func.count())
            .select_from(AuditEvent)
            .where(AuditEvent.action == "instance_started")
        ).scalar_one()
    assert started == 20
    assert verdict.ok and verdict.checked == count


def test_a_failed_service_task_keeps_the_trail_of_what_the_command_did_before_it(
    client, tokens, approval_bpmn
):
    """The failing step's savepoint is rolled back; the instance row written before it, the
    start and the incident stay recorded."""
    started = deploy_and_start(client, tokens, approval_bpmn, "SO-X", explode=True)
    assert started.status_code == 201, started.json
    assert started.json["status"] == "incident"
    actions = [e["action"] for e in trail(client, tokens, f"&entity=instance:{started.json['id']}")]
    assert {"instance_created", "instance_started", "incident"} <= set(actions)
