"""Event-based gateways: the instance listens for every event after the gateway, and the first
one to arrive takes the path (BPMN).

SpiffWorkflow waits at the gateway itself with the catch events' definitions moved onto it, so
before the projections knew this the instance listened for nothing: its messages were buffered
until they expired and its timer never fired.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from engine.definitions.compile import SourceFile
from engine.runtime import commands
from engine.scheduler import sweep_timers
from engine.store.tables import Instance, InstanceEvent, MessageSubscription, Timer
from tests.conftest import FIXTURES
from tests.integration.conftest import ERP

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def quoting(container):
    rt = container.runtime
    rt.clock = lambda: MONDAY
    with rt.uow() as uow:
        source = (FIXTURES / "event_gateway.bpmn").read_bytes()
        rt.catalog.deploy(uow, [SourceFile("event_gateway.bpmn", source)], "test")
        uow.commit()
    return rt


def _start(rt, business_key: str = "Q-1") -> dict:
    return commands.start(rt, "quote", business_key, {"quote_no": f"QN-{business_key}"}, ERP).body


def _ended_at(rt, instance_id: str) -> tuple[str, list[str]]:
    """The instance's status and the end events it reached."""
    with rt.uow(write=False) as uow:
        status = uow.session.get(Instance, instance_id).status
        ends = uow.session.scalars(
            select(InstanceEvent.element_id).where(
                InstanceEvent.instance_id == instance_id,
                InstanceEvent.element_id.like("end_%"),
            )
        ).all()
    return status, sorted(set(ends))


def _listening(rt, instance_id: str) -> tuple[list, list]:
    with rt.uow(write=False) as uow:
        subscriptions = uow.session.scalars(
            select(MessageSubscription).where(MessageSubscription.instance_id == instance_id)
        ).all()
        timers = uow.session.scalars(select(Timer).where(Timer.instance_id == instance_id)).all()
    return subscriptions, timers


def test_the_instance_waits_for_every_event_after_the_gateway_each_with_its_own_key(quoting):
    started = _start(quoting)

    waiting = {(w["type"], w["element_id"]): w for w in started["waiting_for"]}
    assert waiting[("message", "accepted")]["correlation_key"] == "QN-Q-1"  # its own property
    assert waiting[("message", "declined")]["correlation_key"] == "Q-1"  # the business key
    assert waiting[("timer", "lapsed")]["due_at"].startswith("2026-12-23T09:00:00")


def test_the_first_message_takes_its_path_and_the_others_stop_listening(quoting):
    started = _start(quoting)

    answer = commands.deliver_message(quoting, "quote_accepted", "QN-Q-1", {}, "m-1", ERP)

    assert answer.status_code == 200 and answer.body["instance_status"] == "completed"
    assert _ended_at(quoting, started["id"]) == ("completed", ["end_accepted"])
    assert _listening(quoting, started["id"]) == ([], [])
    late = commands.deliver_message(quoting, "quote_declined", "Q-1", {}, "m-2", ERP)
    assert late.status_code == 202  # nobody waits for it any more: buffered, never taken


def test_a_message_correlated_by_the_business_key_takes_its_path(quoting):
    started = _start(quoting, "Q-2")

    answer = commands.deliver_message(quoting, "quote_declined", "Q-2", {"why": "price"}, None, ERP)

    assert answer.body["instance_status"] == "completed"
    assert _ended_at(quoting, started["id"]) == ("completed", ["end_declined"])


def test_the_timer_after_the_gateway_fires_on_time_and_ends_the_wait(quoting):
    started = _start(quoting, "Q-3")
    quoting.clock = lambda: MONDAY + timedelta(days=29, hours=23)
    assert sweep_timers(quoting) == 0

    quoting.clock = lambda: MONDAY + timedelta(days=30)
    assert sweep_timers(quoting) == 1

    assert _ended_at(quoting, started["id"]) == ("completed", ["end_lapsed"])
    assert _listening(quoting, started["id"]) == ([], [])
