"""Message-started event subprocesses: listened for while the instance runs (DESIGN §2)."""

from __future__ import annotations

import pytest

from engine.definitions.compile import SourceFile
from engine.runtime import commands
from engine.store.tables import Instance
from tests.conftest import FIXTURES
from tests.integration.conftest import ERP


@pytest.fixture
def listening(container):
    rt = container.runtime
    with rt.uow() as uow:
        source = (FIXTURES / "event_subprocess.bpmn").read_bytes()
        rt.catalog.deploy(uow, [SourceFile("event_subprocess.bpmn", source)], "test")
        uow.commit()
    return rt


def test_an_interrupting_event_subprocess_ends_the_work_in_progress(listening):
    started = commands.start(listening, "listening", "SO-E1", {}, ERP).body
    assert [t["element_id"] for t in started["active_tasks"]] == ["approve"]
    assert [m["name"] for m in started["listening_for"]] == ["order_cancelled", "order_noted"]
    assert started["waiting_for"] == []

    answer = commands.deliver_message(listening, "order_cancelled", "SO-E1", {}, None, ERP)
    assert answer.status_code == 200 and answer.body["instance_status"] == "completed"
    with listening.uow(write=False) as uow:
        body = commands.instance_summary(uow, uow.session.get(Instance, started["id"]))
        variables = uow.session.get(Instance, started["id"]).variables
    assert body["active_tasks"] == [] and body["listening_for"] == []
    # The subprocess saw the variables of the path it interrupted.
    assert variables["cancelled_at_stage"] == "approval"


def test_a_non_interrupting_event_subprocess_leaves_the_work_in_progress(listening):
    started = commands.start(listening, "listening", "SO-E2", {}, ERP).body
    answer = commands.deliver_message(listening, "order_noted", "SO-E2", {"by": "erp"}, None, ERP)
    assert answer.status_code == 200 and answer.body["instance_status"] == "running"
    with listening.uow(write=False) as uow:
        body = commands.instance_summary(uow, uow.session.get(Instance, started["id"]))
    assert [t["element_id"] for t in body["active_tasks"]] == ["approve"]
    # Still listening: the same message may come again.
    assert [m["name"] for m in body["listening_for"]] == ["order_cancelled", "order_noted"]


def test_an_instance_started_after_another_was_interrupted_is_interrupted_the_same_way(listening):
    # Every instance shares its definition's parsed spec; the first interruption must not
    # change how instances started after it run (SpiffWorkflow wired the subprocess into the
    # shared start task, so later instances ran it at once and it was cancelled with the rest).
    for business_key in ("SO-E3", "SO-E4", "SO-E5"):
        started = commands.start(listening, "listening", business_key, {}, ERP).body
        assert [t["element_id"] for t in started["active_tasks"]] == ["approve"]
        assert [m["name"] for m in started["listening_for"]] == ["order_cancelled", "order_noted"]
        answer = commands.deliver_message(listening, "order_cancelled", business_key, {}, None, ERP)
        assert answer.body["instance_status"] == "completed"
        with listening.uow(write=False) as uow:
            variables = uow.session.get(Instance, started["id"]).variables
        assert variables["cancelled_at_stage"] == "approval", business_key
