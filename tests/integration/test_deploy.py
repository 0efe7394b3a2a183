"""Deploying models into a real database: versions, hostile models, runaway scripts."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from engine.definitions.compile import SourceFile
from engine.errors import InvalidDefinition
from engine.runtime import commands
from engine.store.tables import Definition
from tests.integration.conftest import CAROL, ERP


def deploy(rt, content: bytes):
    with rt.uow() as uow:
        result = rt.catalog.deploy(uow, [SourceFile("approval.bpmn", content)], "analyst")
        uow.commit()
    return result[0]


def test_identical_content_keeps_its_version_and_a_change_makes_the_next(rt, approval_bpmn):
    assert (deploy(rt, approval_bpmn).version, deploy(rt, approval_bpmn).created) == (1, False)
    running = commands.start(
        rt, "approval", "SO-1", {"amount": 5000, "approval_timeout": "P1D"}, ERP
    ).body
    changed = approval_bpmn.replace(b'name="Approve order"', b'name="Approve sales order"')
    assert deploy(rt, changed).version == 2
    # The running instance stays on version 1 and still completes there.
    after = commands.complete_task(
        rt, running["active_tasks"][0]["id"], {"decision": "reject"}, CAROL
    ).body
    assert (after["version"], after["status"]) == (1, "completed")
    fresh = commands.start(
        rt, "approval", "SO-2", {"amount": 5000, "approval_timeout": "P1D"}, ERP
    ).body
    assert fresh["version"] == 2 and fresh["active_tasks"][0]["name"] == "Approve sales order"


@pytest.mark.parametrize(
    ("replace", "by", "element"),
    [
        (b'paid = payment_received["amount"]', b"open('/etc/passwd').read()", "book"),
        (b'paid = payment_received["amount"]', b"exec('import os')", "book"),
        (b"amount &gt; 1000", b"__import__('os').getcwd()", "f_big"),
        (b'camunda:topic="demo.lookup"', b'camunda:topic="no.such.topic"', "lookup"),
    ],
)
def test_hostile_model_is_refused_and_nothing_is_stored(rt, approval_bpmn, replace, by, element):
    with pytest.raises(InvalidDefinition) as refused:
        deploy(rt, approval_bpmn.replace(replace, by))
    assert element in {e["element_id"] for e in refused.value.errors}
    with rt.uow(write=False) as uow:
        assert uow.session.execute(select(func.count()).select_from(Definition)).scalar_one() == 1


def test_runaway_script_becomes_an_incident_not_a_hung_server(rt, approval_bpmn):
    looping = approval_bpmn.replace(
        b'paid = payment_received["amount"]', b"n = 0\nwhile True:\n    n = n + 1"
    )
    deploy(rt, looping)
    body = commands.start(rt, "approval", "SO-3", {"amount": 10}, ERP).body
    done = commands.deliver_message(rt, "payment_received", "SO-3", {"amount": "1"}, None, ERP)
    assert done.body["instance_status"] == "incident"
    with rt.uow(write=False) as uow:
        from engine.store.tables import Instance

        incident = uow.session.get(Instance, body["id"]).incident
    assert incident["element_id"] == "book"
    assert "limit" in incident["error"].lower() or "steps" in incident["error"].lower()
