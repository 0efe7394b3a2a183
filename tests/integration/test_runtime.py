"""Engine commands against a real database (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from domain.inventory import Lot
from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.runtime import commands
from engine.store.tables import Instance, InstanceEvent
from tests.integration.conftest import CAROL, ERP

ORDER = {"amount": 5000, "approval_timeout": "P3D"}


def start(rt: Any, key: str = "SO-1", **variables: Any) -> dict[str, Any]:
    return commands.start(rt, "approval", key, {**ORDER, **variables}, ERP).body


def history(rt: Any, instance_id: str) -> list[str]:
    with rt.uow(write=False) as uow:
        return list(
            uow.session.execute(
                select(InstanceEvent.type)
                .where(InstanceEvent.instance_id == instance_id)
                .order_by(InstanceEvent.id)
            ).scalars()
        )


def test_big_order_waits_at_approval_offered_to_the_group_from_the_service(rt):
    body = start(rt)
    assert body["status"] == "running"
    [task] = body["active_tasks"]
    assert task["element_id"] == "approve_order"
    assert task["candidate_groups"] == ["credit_manager"]
    assert {"type": "timer", "element_id": "approval_timeout"}.items() <= body["waiting_for"][
        0
    ].items()


def test_approved_order_waits_for_payment_then_completes_on_message(rt):
    body = start(rt)
    task_id = body["active_tasks"][0]["id"]
    after = commands.complete_task(rt, task_id, {"decision": "approve"}, CAROL).body
    assert after["active_tasks"] == []
    assert after["waiting_for"] == [
        {
            "type": "message",
            "name": "payment_received",
            "correlation_key": "SO-1",
            "element_id": "wait_payment",
        }
    ]
    delivered = commands.deliver_message(
        rt, "payment_received", "SO-1", {"amount": "5000.00"}, "pay-1", ERP
    )
    assert delivered.status_code == 200
    assert delivered.body["instance_status"] == "completed"
    with rt.uow(write=False) as uow:
        instance = uow.session.get(Instance, body["id"])
        assert instance.variables["paid"] == "5000.00"


def test_a_message_meets_the_instance_as_stored_when_it_changed_after_being_read_ahead(
    rt, monkeypatch
):
    # On SQLite a command inflates its instance before it takes the write lock; a command that
    # saved the instance in between must not be undone by running on the earlier read.
    body = start(rt)
    read_early = commands._inflate_ahead(rt, lambda uow: body["id"])
    assert (read_early.workflow is not None) == rt.uow.sqlite
    commands.complete_task(rt, body["active_tasks"][0]["id"], {"decision": "approve"}, CAROL)
    monkeypatch.setattr(commands, "_inflate_ahead", lambda rt, find: read_early)

    delivered = commands.deliver_message(
        rt, "payment_received", "SO-1", {"amount": "5000.00"}, "pay-1", ERP
    )

    assert delivered.status_code == 200
    assert delivered.body["instance_status"] == "completed"
    assert history(rt, body["id"]).count("task_completed") == 1


def test_invalid_form_is_refused_naming_every_field_and_task_stays_open(rt):
    task_id = start(rt)["active_tasks"][0]["id"]
    with pytest.raises(ValidationFailed) as refused:
        commands.complete_task(rt, task_id, {"decision": "maybe", "comment": "x" * 300}, CAROL)
    assert {e["field"] for e in refused.value.errors} == {"decision", "comment"}
    with rt.uow(write=False) as uow:
        assert (
            commands.instance_summary(uow, uow.session.get(Instance, _instance_of(rt, task_id)))[
                "active_tasks"
            ][0]["id"]
            == task_id
        )


def _instance_of(rt: Any, task_id: str) -> str:
    from engine.store.tables import HumanTask

    with rt.uow(write=False) as uow:
        return uow.session.get(HumanTask, task_id).instance_id


def test_user_outside_candidate_groups_cannot_complete(rt):
    from engine.runtime.commands import Actor

    task_id = start(rt)["active_tasks"][0]["id"]
    with pytest.raises(Forbidden):
        commands.complete_task(
            rt, task_id, {"decision": "approve"}, Actor("sam", frozenset({"sales_manager"}))
        )


def test_completed_task_cannot_be_completed_again(rt):
    task_id = start(rt)["active_tasks"][0]["id"]
    commands.complete_task(rt, task_id, {"decision": "reject"}, CAROL)
    with pytest.raises(Conflict):
        commands.complete_task(rt, task_id, {"decision": "approve"}, CAROL)


def test_business_error_from_handler_takes_the_error_boundary(rt):
    body = start(rt, blocked=True)
    assert body["status"] == "completed"
    assert "business_error" in history(rt, body["id"])


def test_crashing_handler_is_an_incident_that_keeps_the_instance_and_retry_resumes(rt):
    body = start(rt, explode=True)
    assert body["status"] == "incident"
    assert body["incident"]["element_id"] == "lookup"
    assert "ERP lookup timed out" in body["incident"]["error"]
    assert body["active_tasks"] == []
    with rt.uow() as uow:
        instance = uow.session.get(Instance, body["id"])
        # The fix arrives as data: the handler no longer fails on retry.
        from engine.runtime.state import dump_state, load_state

        definition = rt.catalog.loaded(uow, instance.definition_id)
        workflow = load_state(instance.state, definition.spec, definition.subprocess_specs)
        for task in workflow.get_tasks():
            task.data.pop("explode", None)
        instance.state = dump_state(workflow)
        uow.commit()
    retried = commands.retry(rt, body["id"], ERP).body
    assert retried["status"] == "running"
    assert retried["active_tasks"][0]["element_id"] == "approve_order"


def test_row_the_database_refuses_is_an_incident_at_its_step_and_nothing_of_it_is_kept(rt):
    body = start(rt, unstorable=True)
    assert body["status"] == "incident"
    assert body["incident"]["element_id"] == "lookup"
    with rt.uow(write=False) as uow:
        assert uow.session.scalars(select(Lot)).all() == []


def outbox_types(rt: Any, instance_id: str) -> list[str]:
    from engine.store.tables import OutboxMessage

    with rt.uow(write=False) as uow:
        return list(
            uow.session.scalars(
                select(OutboxMessage.event_type).where(OutboxMessage.instance_id == instance_id)
            )
        )


@pytest.mark.parametrize(
    ("failure", "status", "recorded"),
    [("explode", "incident", "incident"), ("blocked", "completed", "business_error")],
)
def test_a_handler_that_fails_after_writing_leaves_none_of_its_writes(
    rt, failure, status, recorded
):
    body = start(rt, "SO-W", write_first=True, **{failure: True})
    assert body["status"] == status
    assert outbox_types(rt, body["id"]) == []
    steps = history(rt, body["id"])
    assert steps[0] == "instance_started"
    assert recorded in steps


def test_a_handler_that_succeeds_keeps_its_writes(rt):
    body = start(rt, "SO-K", write_first=True)
    assert body["status"] == "running"
    assert "demo.lookup_begun" in outbox_types(rt, body["id"])


def test_message_sent_before_the_wait_is_buffered_then_delivered(rt):
    buffered = commands.deliver_message(rt, "payment_received", "SO-9", {"amount": "10"}, None, ERP)
    assert buffered.status_code == 202
    body = commands.start(rt, "approval", "SO-9", {"amount": 10}, ERP).body
    assert body["status"] == "completed"


def test_a_buffered_message_nobody_waits_for_expires_into_an_event_and_is_kept(rt):
    from engine.scheduler import sweep_buffer
    from engine.store.tables import BufferedMessage, OutboxMessage

    sent_at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    rt.clock = lambda: sent_at
    buffered = commands.deliver_message(
        rt, "payment_received", "SO-7", {"amount": "10"}, "m-7", ERP
    )
    assert buffered.status_code == 202
    rt.clock = lambda: sent_at + rt.message_ttl - timedelta(seconds=1)
    assert sweep_buffer(rt) == 0
    rt.clock = lambda: sent_at + rt.message_ttl
    assert sweep_buffer(rt) == 1
    assert sweep_buffer(rt) == 0
    with rt.uow(write=False) as uow:
        [row] = uow.session.scalars(
            select(BufferedMessage).where(BufferedMessage.correlation_key == "SO-7")
        ).all()
        assert row.expired_at is not None
        [event] = uow.session.scalars(
            select(OutboxMessage.payload).where(OutboxMessage.event_type == "message.expired")
        ).all()
    assert event["message_id"] == "m-7"
    assert event["payload"] == {"amount": "10"}
    # An instance that starts waiting later does not get the expired message.
    body = commands.start(rt, "approval", "SO-7", {"amount": 10}, ERP).body
    assert body["status"] == "running"
    assert [w["name"] for w in body["waiting_for"]] == ["payment_received"]


def test_an_instance_ended_by_a_buffered_message_stops_listening(rt):
    commands.deliver_message(rt, "payment_received", "SO-B", {"amount": "10"}, "b-1", ERP)
    assert commands.start(rt, "approval", "SO-B", {"amount": 10}, ERP).body["status"] == "completed"
    # A second payment for the same order waits for whoever comes next, not for the ended one.
    again = commands.deliver_message(rt, "payment_received", "SO-B", {"amount": "1"}, "b-2", ERP)
    assert again.status_code == 202
    assert again.body["status"] == "buffered"


def test_a_message_without_a_key_reaches_an_instance_without_a_business_key(rt):
    # Sent before the instance waits: buffered under no key, then taken by its subscription.
    early = commands.deliver_message(rt, "payment_received", None, {"amount": "7"}, "nk-1", ERP)
    assert early.status_code == 202
    body = commands.start(rt, "approval", None, {"amount": 10}, ERP).body
    assert body["status"] == "completed"
    # Sent while it waits: found through its subscription under no key.
    waiting = commands.start(rt, "approval", None, {"amount": 10}, ERP).body
    assert [w["correlation_key"] for w in waiting["waiting_for"]] == [None]
    delivered = commands.deliver_message(rt, "payment_received", None, {"amount": "8"}, None, ERP)
    assert delivered.body == {
        "status": "delivered",
        "instance_id": waiting["id"],
        "instance_status": "completed",
    }


def test_repeated_message_id_returns_the_first_answer(rt):
    first = commands.deliver_message(rt, "payment_received", "SO-8", {"amount": "1"}, "m-1", ERP)
    again = commands.deliver_message(rt, "payment_received", "SO-8", {"amount": "1"}, "m-1", ERP)
    assert (again.status_code, again.body) == (first.status_code, first.body)
    with rt.uow(write=False) as uow:
        from engine.store.tables import BufferedMessage

        assert (
            uow.session.execute(select(func.count()).select_from(BufferedMessage)).scalar_one() == 1
        )


def test_same_idempotency_key_returns_the_same_instance_and_other_body_conflicts(rt):
    first = commands.start(rt, "approval", "SO-2", ORDER, ERP, idempotency_key="k-2")
    again = commands.start(rt, "approval", "SO-2", ORDER, ERP, idempotency_key="k-2")
    assert first.status_code == 201 and again.status_code == 200
    assert again.body["id"] == first.body["id"]
    with pytest.raises(Conflict):
        commands.start(rt, "approval", "SO-3", ORDER, ERP, idempotency_key="k-2")


def test_ten_concurrent_starts_with_one_idempotency_key_make_one_instance(rt):
    with ThreadPoolExecutor(10) as pool:
        results = list(
            pool.map(
                lambda _: commands.start(rt, "approval", "SO-5", ORDER, ERP, idempotency_key="k-5"),
                range(10),
            )
        )
    assert len({r.body["id"] for r in results}) == 1
    assert sorted(r.status_code for r in results) == [200] * 9 + [201]
    with rt.uow(write=False) as uow:
        assert uow.session.execute(select(func.count()).select_from(Instance)).scalar_one() == 1


def test_two_threads_completing_one_task_exactly_one_wins(rt):
    task_id = start(rt)["active_tasks"][0]["id"]

    def complete(_: int) -> str:
        try:
            commands.complete_task(rt, task_id, {"decision": "approve"}, CAROL)
            return "won"
        except Conflict:
            return "conflict"

    with ThreadPoolExecutor(2) as pool:
        outcomes = sorted(pool.map(complete, range(2)))
    assert outcomes == ["conflict", "won"]


def test_unknown_process_key_is_not_found(rt):
    with pytest.raises(NotFound):
        commands.start(rt, "nope", "X", {}, ERP)


def test_cancel_ends_the_instance_and_withdraws_its_tasks(rt):
    body = start(rt)
    from engine.runtime.commands import Actor

    admin = Actor("admin", frozenset({"admin"}))
    cancelled = commands.cancel(rt, body["id"], "customer withdrew", admin).body
    assert cancelled["status"] == "cancelled"
    assert cancelled["active_tasks"] == [] and cancelled["waiting_for"] == []
    with pytest.raises(Conflict):
        commands.complete_task(rt, body["active_tasks"][0]["id"], {"decision": "approve"}, CAROL)


def test_blob_of_a_waiting_instance_is_small(rt):
    body = start(rt)
    with rt.uow(write=False) as uow:
        assert len(uow.session.get(Instance, body["id"]).state) < 4096


def test_approval_timer_fires_and_cancels_the_task(rt):
    from engine.scheduler import sweep_timers

    body = start(rt, approval_timeout="PT0.2S")
    time.sleep(0.4)
    assert sweep_timers(rt) == 1
    with rt.uow(write=False) as uow:
        assert uow.session.get(Instance, body["id"]).status == "completed"
    assert "task_cancelled" in history(rt, body["id"])


def test_boundary_timer_follows_the_runtime_clock_not_the_wall_clock(rt):
    """A two-day escalation fires when the injected clock says two days passed, not before."""
    from engine.scheduler import sweep_timers

    start_at = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    rt.clock = lambda: start_at
    body = start(rt, approval_timeout="P2D")
    timer = next(w for w in body["waiting_for"] if w["type"] == "timer")
    assert timer["due_at"].startswith("2026-11-25T09:00:00")

    rt.clock = lambda: start_at + timedelta(days=1, hours=23)
    assert sweep_timers(rt) == 0
    rt.clock = lambda: start_at + timedelta(days=2)
    assert sweep_timers(rt) == 1
    with rt.uow(write=False) as uow:
        assert uow.session.get(Instance, body["id"]).status == "completed"
    assert "task_cancelled" in history(rt, body["id"])


def test_rows_queued_without_an_id_and_rows_given_one_up_front_never_collide(rt):
    from engine.decisions import store_decision
    from engine.store.tables import DecisionRecord

    now = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
    record = {
        "ruleset_key": "credit",
        "ruleset_version": 1,
        "parameter_version": 1,
        "outcome": "pass",
        "fired": [],
    }
    with rt.uow() as uow:
        queued = DecisionRecord(
            ruleset_key="credit",
            ruleset_version=1,
            parameter_version=1,
            outcome="pass",
            record=record,
            created_at=now,
        )
        uow.session.add(queued)
        stored = [store_decision(uow.session, record, None, "test", now) for _ in range(3)]
        uow.commit()
    ids = [queued.id, *(row.id for row in stored)]
    assert len(set(ids)) == 4
    with rt.uow(write=False) as uow:
        assert uow.session.scalar(select(func.count(DecisionRecord.id))) == 4
