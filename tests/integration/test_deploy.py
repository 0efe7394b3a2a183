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
        (b'camunda:dueDate="P2D"', b'camunda:dueDate="P99999999Y"', "approve_order"),
        (b'camunda:dueDate="P2D"', b'camunda:dueDate="garbage"', "approve_order"),
        (b'name="maxlength" config="200"', b'name="maxlength" config="-1"', "approve_order"),
        (b'name="maxlength" config="200"', b'name="maxlength" config="abc"', "approve_order"),
        (b'id="approval"', b'id="a b/c"', "a b/c"),
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


def test_a_century_long_timer_from_a_variable_is_an_incident_at_once(rt, approval_bpmn):
    # SpiffWorkflow adds a duration month by month: unbounded, this start held the write lock
    # for 12 s (and P99999999Y for about 20 minutes), stalling every other command.
    deploy(rt, approval_bpmn)
    body = commands.start(
        rt, "approval", "SO-4", {"amount": 5000, "approval_timeout": "P999999Y"}, ERP
    ).body
    assert body["status"] == "incident"
    assert "longer than 100 years" in body["incident"]["error"]


def test_a_due_date_variable_that_cannot_be_used_leaves_the_task_without_one(rt, approval_bpmn):
    deploy(rt, approval_bpmn.replace(b'camunda:dueDate="P2D"', b'camunda:dueDate="${due}"'))
    variables = {"amount": 5000, "approval_timeout": "P1D", "due": "P99999999Y"}
    body = commands.start(rt, "approval", "SO-5", variables, ERP).body
    assert body["status"] == "running"
    [task] = body["active_tasks"]
    with rt.uow(write=False) as uow:
        from engine.store.tables import HumanTask, InstanceEvent

        assert uow.session.get(HumanTask, task["id"]).due_at is None

        failed = uow.session.execute(
            select(InstanceEvent.element_id, InstanceEvent.details).where(
                InstanceEvent.type == "task_due_date_failed"
            )
        ).all()
    assert [element for element, _ in failed] == ["approve_order"]
    assert "longer than 100 years" in failed[0][1]["error"]
