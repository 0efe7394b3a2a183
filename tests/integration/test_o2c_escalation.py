"""An idle credit hold escalates on its boundary timer, per the `escalation` ruleset (issue 4).

The clock is the runtime's: the test moves it a day at a time and sweeps due timers, so the
SpiffWorkflow cycle timer and the ruleset's business-day ages both follow it.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from api.bootstrap import Container
from engine.scheduler import sweep_timers
from engine.store.tables import HumanTask, TaskEscalation, Timer
from tests.integration.o2c_support import O2CApi, make_api

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


@pytest.fixture
def api(container: Container) -> O2CApi:
    container.runtime.clock = lambda: MONDAY
    return make_api(container)


def held_order(api: O2CApi, order_no: str) -> tuple[str, dict]:
    api.customer("C-ESC", credit_limit="2000.00")
    api.lot("L1")
    line = {"line_no": 1, "gtin": "06901234567892", "lot": "L1", "qty": 2,
            "unit_price": "1000.00", "tax_rate": "0.13"}  # fmt: skip
    started = api.start(order_no, "C-ESC", [line])  # 2260.00 gross: 13 % over the limit
    [task] = api.open_tasks(order_no)
    assert task["element_id"] == "approve_credit"
    return started["id"], task


def escalation_levels(api: O2CApi, task_id: str) -> list[tuple[int, str]]:
    with api.container.runtime.uow(write=False) as uow:
        rows = uow.session.scalars(
            select(TaskEscalation).where(TaskEscalation.task_id == task_id)
        ).all()
        return sorted((row.level, row.action) for row in rows)


def timers_of(api: O2CApi, instance_id: str) -> list[datetime]:
    """When each of the instance's timers is due (UTC)."""
    with api.container.runtime.uow(write=False) as uow:
        rows = uow.session.scalars(select(Timer.due_at).where(Timer.instance_id == instance_id))
        return [due.replace(tzinfo=UTC) for due in rows]


def test_idle_credit_hold_is_reminded_escalated_to_finance_and_owner_notified_on_business_days(
    api: O2CApi,
) -> None:
    rt = api.container.runtime
    instance_id, task = held_order(api, "SO-ESC-1")
    variables = api.instance(instance_id)["variables"]
    # SLA 2 business days x p_notify_owner_at 3 = 6 business days: Tuesday 1 December.
    assert variables["credit_escalation_cycle"] == "R8/P1D"
    assert timers_of(api, instance_id) == [MONDAY + timedelta(days=1)]

    seen: dict[str, list[tuple[int, str]]] = {}
    for day in range(1, 9):
        rt.clock = lambda d=day: MONDAY + timedelta(days=d)
        assert sweep_timers(rt) == 1, day
        seen[rt.clock().strftime("%a %d")] = escalation_levels(api, task["id"])
    assert seen["Tue 24"] == []
    assert seen["Wed 25"] == [(1, "remind_assignee")]
    assert seen["Thu 26"] == seen["Wed 25"]
    assert seen["Fri 27"] == [(1, "remind_assignee"), (2, "escalate_add_candidates")]
    # The weekend does not count: the owner hears of it on the sixth business day.
    assert seen["Mon 30"] == seen["Fri 27"]
    assert seen["Tue 01"][-1] == (3, "notify_process_owner")
    # The cycle has run out; the task stays open for whoever acts.
    rt.clock = lambda: MONDAY + timedelta(days=20)
    assert sweep_timers(rt) == 0

    [escalated] = api.open_tasks("SO-ESC-1")
    assert escalated["candidate_groups"] == ["credit_manager", "finance_director"]
    events = api.outbox_events(instance_id)
    assert events.count("task.escalated") == 3
    decisions = api.decisions(instance_id)
    assert [d["outcome"] for d in decisions if d["ruleset_key"] == "escalation"] == [
        "warn",
        "hold",
        "hold",
    ]
    done = api.complete(escalated["id"], "frank", approved=True, reason="escalated to me")
    assert done.status_code == 200, done.json
    assert [w["name"] for w in api.instance(instance_id)["waiting_for"]] == ["shipment_confirmed"]


def test_approving_in_time_cancels_the_escalation_timer(api: O2CApi) -> None:
    rt = api.container.runtime
    instance_id, task = held_order(api, "SO-ESC-2")
    rt.clock = lambda: MONDAY + timedelta(days=1)
    assert sweep_timers(rt) == 1
    done = api.complete(task["id"], "carol", approved=True, reason="known customer")
    assert done.status_code == 200, done.json
    assert timers_of(api, instance_id) == []
    rt.clock = lambda: MONDAY + timedelta(days=10)
    assert sweep_timers(rt) == 0
    assert escalation_levels(api, task["id"]) == []
    with rt.uow(write=False) as uow:
        assert uow.session.get(HumanTask, task["id"]).status == "completed"


def test_the_timer_follows_the_escalation_parameters_and_holiday_calendar(api: O2CApi) -> None:
    analyst = api.container.tokens.issue("ann", ["analyst"])
    changed = api.client.put(
        "/api/v1/rulesets/escalation/parameters",
        json={
            "values": {"p_notify_owner_at": 2, "p_holidays": ["2026-11-26"]},
            "effective_from": "2026-11-01",
        },
        headers={"Authorization": f"Bearer {analyst}"},
    )
    assert changed.status_code == 201, changed.json
    instance_id, task = held_order(api, "SO-ESC-3")
    # 2 x 2 = 4 business days, Thursday a holiday: Tue, Wed, Fri, Mon 30 November.
    assert api.instance(instance_id)["variables"]["credit_escalation_cycle"] == "R7/P1D"
    rt = api.container.runtime
    for day in range(1, 8):
        rt.clock = lambda d=day: MONDAY + timedelta(days=d)
        assert sweep_timers(rt) == 1
    assert [level for level, _ in escalation_levels(api, task["id"])] == [1, 2, 3]
    rt.clock = lambda: MONDAY + timedelta(days=9)
    assert sweep_timers(rt) == 0


def test_an_idle_second_approval_escalates_to_its_own_target(api: O2CApi) -> None:
    """N-eyes: the finance director's task has its own idle timer and goes up to the CFO."""
    rt = api.container.runtime
    api.customer("C-ESC2", credit_limit="1000.00")
    api.lot("L1")
    line = {"line_no": 1, "gtin": "06901234567892", "lot": "L1", "qty": 2,
            "unit_price": "1000.00", "tax_rate": "0.13"}  # fmt: skip
    started = api.start("SO-ESC-3", "C-ESC2", [line])  # 126 % over the limit: N-eyes
    [first] = api.open_tasks("SO-ESC-3")
    assert api.complete(first["id"], "carol", approved=True, reason="ok").status_code == 200
    [second] = api.open_tasks("SO-ESC-3")
    assert second["element_id"] == "approve_credit_second"
    assert timers_of(api, started["id"]) == [MONDAY + timedelta(days=1)]
    for day in range(1, 5):  # to Friday: 2 x the 2-business-day SLA
        rt.clock = lambda d=day: MONDAY + timedelta(days=d)
        assert sweep_timers(rt) == 1, day
    assert escalation_levels(api, second["id"]) == [
        (1, "remind_assignee"),
        (2, "escalate_add_candidates"),
    ]
    [escalated] = api.open_tasks("SO-ESC-3")
    assert escalated["candidate_groups"] == ["finance_director", "cfo"]
    done = api.complete(escalated["id"], "cfo", approved=True, reason="escalated to me")
    assert done.status_code == 200, done.json
    assert timers_of(api, started["id"]) == []
