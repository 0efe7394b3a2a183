"""The escalation ladder on an injected clock: once per level, business days, two schedulers."""

from __future__ import annotations

import threading
from datetime import date, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from engine.escalation import parse_sla, sweep_escalations
from engine.runtime import commands
from engine.scheduler import Scheduler
from engine.store.tables import HumanTask, OutboxMessage, TaskEscalation
from tests.integration.conftest import ERP
from tests.integration.test_inbox_models import MONDAY, Clock, deploy_models, purchase

FRIDAY = MONDAY + timedelta(days=4)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def rt(container, clock):
    deploy_models(container, clock)
    return container.runtime


def start(rt: Any, key: str = "PR-1", **changes: Any) -> str:
    return commands.start(rt, "review", key, purchase(**changes), ERP).body["active_tasks"][0]["id"]


def at(clock: Clock, moment: datetime) -> Clock:
    clock.now = moment
    return clock


def ladder(rt: Any, task_id: str) -> list[tuple[int, str, str | None]]:
    with rt.uow(write=False) as uow:
        rows = uow.session.execute(
            select(TaskEscalation)
            .where(TaskEscalation.task_id == task_id)
            .order_by(TaskEscalation.level)
        ).scalars()
        return [(r.level, r.action, r.target) for r in rows]


def escalated_messages(rt: Any) -> list[dict[str, Any]]:
    with rt.uow(write=False) as uow:
        rows = uow.session.execute(
            select(OutboxMessage)
            .where(OutboxMessage.event_type == "task.escalated")
            .order_by(OutboxMessage.id)
        ).scalars()
        return [r.payload for r in rows]


def task(rt: Any, task_id: str) -> HumanTask:
    with rt.uow(write=False) as uow:
        row = uow.session.get(HumanTask, task_id)
        uow.session.expunge(row)
        return row


def test_ladder_reminds_escalates_then_notifies_the_owner_once_per_level(rt, clock):
    task_id = start(rt)
    rules = rt.rules.rules
    assert sweep_escalations(rt, rules) == 0
    at(clock, MONDAY + timedelta(hours=20))
    assert sweep_escalations(rt, rules) == 1
    assert sweep_escalations(rt, rules) == 0
    at(clock, MONDAY + timedelta(days=1, hours=12))
    assert sweep_escalations(rt, rules) == 0
    at(clock, MONDAY + timedelta(days=2))
    assert sweep_escalations(rt, rules) == 1
    at(clock, MONDAY + timedelta(days=3))
    assert sweep_escalations(rt, rules) == 1
    at(clock, MONDAY + timedelta(days=9))
    assert sweep_escalations(rt, rules) == 0
    assert ladder(rt, task_id) == [
        (1, "remind_assignee", "bella,credit_manager"),
        (2, "escalate_add_candidates", "finance_director"),
        (3, "notify_process_owner", "olga"),
    ]
    messages = escalated_messages(rt)
    assert [m["level"] for m in messages] == [1, 2, 3]
    assert all(m["link"] == f"/api/v1/tasks/{task_id}" for m in messages)
    row = task(rt, task_id)
    assert (row.state, row.escalation_level, row.escalation_check_at) == ("escalated", 3, None)
    assert row.candidate_groups == ["credit_manager", "finance_director"]


def test_escalated_task_appears_in_the_inbox_of_escalate_to(rt, clock, container):
    from api.app import create_app

    task_id = start(rt)
    at(clock, MONDAY + timedelta(days=2))
    sweep_escalations(rt, rt.rules.rules)
    frank = container.tokens.issue("frank", ["finance_director"], ["finance_director"])
    client = create_app(container=container).test_client()
    inbox = client.get("/api/v1/tasks", headers={"Authorization": f"Bearer {frank}"}).json
    assert [t["id"] for t in inbox["items"]] == [task_id]


def test_reassign_mode_takes_the_task_away_from_its_first_group(rt, clock):
    task_id = start(rt)
    assert task(rt, task_id).candidate_groups == ["credit_manager"]
    at(clock, MONDAY + timedelta(days=2))
    sweep_escalations(rt, rt.rules.rules, mode="reassign")
    row = task(rt, task_id)
    assert (row.candidate_groups, row.candidate_users, row.assignee) == (
        ["finance_director"],
        [],
        None,
    )
    assert [a for _, a, _ in ladder(rt, task_id)] == ["remind_assignee", "escalate_reassign"]


def test_weekend_does_not_count_toward_the_sla(rt, clock):
    at(clock, FRIDAY)
    task_id = start(rt)
    for day in (1, 2):  # Saturday, Sunday
        at(clock, FRIDAY + timedelta(days=day, hours=1))
        assert sweep_escalations(rt, rt.rules.rules) == 0
    at(clock, FRIDAY + timedelta(days=3, hours=1))  # Monday
    assert sweep_escalations(rt, rt.rules.rules) == 1
    assert ladder(rt, task_id)[0][0] == 1


def test_holiday_calendar_parameter_pushes_the_reminder_a_day(rt, clock):
    rules = rt.rules.rules
    rules.set_parameters("escalation", {"p_holidays": ["2026-11-24"]}, date(2026, 1, 1))
    task_id = start(rt)
    at(clock, MONDAY + timedelta(days=1, hours=1))  # Tuesday, a holiday
    assert sweep_escalations(rt, rules) == 0
    at(clock, MONDAY + timedelta(days=2, hours=1))  # Wednesday
    assert sweep_escalations(rt, rules) == 1
    assert [level for level, _, _ in ladder(rt, task_id)] == [1]


def test_completed_task_is_not_escalated(rt, clock):
    from tests.integration.conftest import CAROL

    task_id = start(rt)
    commands.complete_task(rt, task_id, {"decision": "approve"}, CAROL)
    at(clock, MONDAY + timedelta(days=5))
    assert sweep_escalations(rt, rt.rules.rules) == 0
    assert ladder(rt, task_id) == []


def test_two_schedulers_escalate_each_task_once_per_level(rt, clock):
    ids = [start(rt, f"PR-{n}") for n in range(12)]
    at(clock, MONDAY + timedelta(days=1, hours=1))
    barrier = threading.Barrier(2)
    taken: list[int] = []
    errors: list[BaseException] = []

    def scheduler() -> None:
        try:
            barrier.wait()
            for _ in range(3):
                taken.append(sweep_escalations(rt, rt.rules.rules, batch=5))
        except BaseException as exc:  # pragma: no cover - surfaced by the assert below
            errors.append(exc)

    threads = [threading.Thread(target=scheduler) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert sum(taken) == len(ids)
    with rt.uow(write=False) as uow:
        per_level = uow.session.execute(
            select(TaskEscalation.level, func.count()).group_by(TaskEscalation.level)
        ).all()
    assert [tuple(r) for r in per_level] == [(1, len(ids))]
    assert len(escalated_messages(rt)) == len(ids)


def test_scheduler_runs_the_escalation_job_when_rules_are_wired(rt):
    scheduler = Scheduler(rt)
    assert "escalations" in [job.id for job in scheduler._scheduler.get_jobs()]


@pytest.mark.parametrize(
    ("text", "days"), [("3", 3), ("P2D", 2), ("P1W", 5), ("PT4H", 1), ("soon", None), ("", None)]
)
def test_sla_is_read_in_business_days(text, days):
    assert parse_sla(text) == days


def test_task_events_reach_a_webhook_subscribed_to_them_with_a_deep_link(rt, clock, container):
    from engine.scheduler import dispatch_outbox
    from engine.store.tables import Webhook
    from tests.integration.conftest import CAROL

    with rt.uow() as uow:
        uow.session.add(
            Webhook(
                url="http://127.0.0.1:9/hook",
                events=["task.created", "task.escalated", "task.completed"],
                secret="s",
            )
        )
        uow.commit()
    task_id = start(rt)
    at(clock, MONDAY + timedelta(hours=20))
    sweep_escalations(rt, rt.rules.rules)
    commands.complete_task(rt, task_id, {"decision": "approve"}, CAROL)
    delivered: list[tuple[str, dict[str, Any]]] = []
    dispatch_outbox(
        rt, lambda message, hooks: delivered.append((message.event_type, message.payload))
    )
    events = [(kind, body["link"]) for kind, body in delivered if body.get("task_id") == task_id]
    link = f"/api/v1/tasks/{task_id}"
    assert events == [("task.created", link), ("task.escalated", link), ("task.completed", link)]


def test_one_sweep_escalates_more_tasks_than_one_batch(rt, clock):
    ids = [start(rt, f"PR-{n}") for n in range(7)]
    at(clock, MONDAY + timedelta(days=1, hours=1))
    assert sweep_escalations(rt, rt.rules.rules, batch=3) == len(ids)
