"""The escalation sweep: remind, escalate and notify the owner of tasks that wait too long.

A task's SLA is its `sla` property in business days (`3`, `P3D`, `P1W` = 5) or, without one,
the business days from creation to `camunda:dueDate`. The `escalation` ruleset decides the
ladder on ages counted in business days with its holiday calendar parameter (`p_holidays`;
weekends are always off): at the SLA the assignee is reminded, at twice the SLA the task goes
to `escalate_to`, at three times the process owner is notified (rules/escalation.py).

Any number of schedulers may run this. Each claims due tasks with FOR UPDATE SKIP LOCKED on
PostgreSQL (SQLite's write lock serialises them), and the unique (task, level) key of
`task_escalation` makes a second escalation of one level fail rather than notify twice.
"""

from __future__ import annotations

import logging
import re
from datetime import UTC, date, datetime, time, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from engine.decisions import store_decision
from engine.runtime.inbox import candidate, history, notify, sync_offer
from engine.store.tables import (
    HumanTask,
    Instance,
    TaskCandidate,
    TaskEscalation,
)
from rules.escalation import WaitingItem, business_days_between, decide_escalation

if TYPE_CHECKING:
    from engine.runtime.commands import Runtime
    from rules.decision import Decision, FiredRule
    from rules.service import RulesService

log = logging.getLogger("flowgate.escalation")

TOP_LEVEL = 3
MODES = ("add_candidates", "reassign")
_SLA = re.compile(r"^P(?:(?P<w>\d+)W)?(?:(?P<d>\d+)D)?(?:T(?:(?P<h>\d+)H)?(?:\d+M)?)?$")


def parse_sla(value: Any) -> int | None:
    """Business days from `3`, `P3D`, `P1W` (a working week is 5) or `PT8H` (at least one)."""
    if value in (None, ""):
        return None
    text = str(value).strip().upper()
    if text.isdigit():
        return max(1, int(text))
    match = _SLA.match(text)
    if match is None or text == "P":
        return None
    days = int(match["w"] or 0) * 5 + int(match["d"] or 0)
    return max(1, days)


def sla_business_days(
    properties: dict[str, Any], created_at: datetime, due_at: datetime | None
) -> int | None:
    sla = parse_sla(properties.get("sla"))
    if sla is None and due_at is not None:
        sla = max(1, business_days_between(created_at.date(), due_at.date()))
    return sla


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), tzinfo=UTC)


def first_check_at(created_at: datetime, sla: int | None, level: int = 0) -> datetime | None:
    """The earliest day the next level can be due: N business days take at least N days."""
    if sla is None or level >= TOP_LEVEL:
        return None
    return _midnight(created_at.date() + timedelta(days=sla * (level + 1)))


def _target(escalate_to: str) -> tuple[str, str]:
    """`user:bob` names a person; anything else is a group."""
    kind, _, name = escalate_to.partition(":")
    return ("user", name) if kind == "user" and name else ("group", escalate_to)


def _add_candidate(session: Session, row: HumanTask, kind: str, name: str) -> None:
    column = "candidate_users" if kind == "user" else "candidate_groups"
    names = list(getattr(row, column) or [])
    if name not in names:
        setattr(row, column, [*names, name])
        session.add(candidate(row, kind, name))


def _reassign(session: Session, row: HumanTask, kind: str, name: str) -> None:
    session.execute(delete(TaskCandidate).where(TaskCandidate.task_id == row.id))
    row.candidate_users, row.candidate_groups = ([name], []) if kind == "user" else ([], [name])
    session.add(candidate(row, kind, name))
    row.assignee = name if kind == "user" else None
    row.claimed_by = row.claimed_at = None
    row.delegated_to = row.delegated_by = row.delegation_id = None
    session.flush()
    sync_offer(session, row)


def _escalate_to(
    session: Session, row: HumanTask, mode: str, now: datetime
) -> tuple[str, str | None]:
    escalate_to = (row.properties or {}).get("escalate_to")
    if not escalate_to:
        return "escalate", None
    kind, name = _target(escalate_to)
    if mode == "reassign":
        _reassign(session, row, kind, name)
        notify(session, row, "task.assigned", now, reason="escalated", assigned_by="flowgate")
    else:
        _add_candidate(session, row, kind, name)
    row.state = "escalated"
    return f"escalate_{mode}", escalate_to


def _apply(
    session: Session, row: HumanTask, rule: FiredRule, mode: str, now: datetime
) -> tuple[str, str | None]:
    """Carry out one rung; return (action, who it went to)."""
    if rule.emit.get("escalate"):
        return _escalate_to(session, row, mode, now)
    if rule.emit.get("notify_process_owner"):
        instance = session.get(Instance, row.instance_id)
        owner = (row.properties or {}).get("process_owner") or (
            instance.started_by if instance is not None else None
        )
        return "notify_process_owner", owner
    reminded = row.assignee or ",".join([*row.candidate_users, *row.candidate_groups])
    return "remind_assignee", reminded or None


def _record_decision(session: Session, row: HumanTask, decision: Decision, now: datetime) -> int:
    return store_decision(session, decision.to_record(), row.instance_id, row.element_id, now).id


def escalate_task(
    session: Session, rules: RulesService, row: HumanTask, now: datetime, mode: str
) -> int:
    """Take every rung the ruleset says is due for this task; return how many were taken."""
    if not row.sla_business_days:
        row.escalation_check_at = None
        return 0
    item = WaitingItem(
        opened_on=row.created_at.date(),
        sla_business_days=row.sla_business_days,
        level=row.escalation_level,
        escalate_to=(row.properties or {}).get("escalate_to") or "",
    )
    decision = decide_escalation(rules, item, now.date()).decision
    rungs = sorted(
        (r for r in decision.fired if int(r.emit.get("level", 0)) > row.escalation_level),
        key=lambda r: int(r.emit["level"]),
    )
    if not rungs:
        # Weekends or holidays kept the business age below the next rung: look again tomorrow.
        row.escalation_check_at = _midnight(now.date() + timedelta(days=1))
        return 0
    decision_id = _record_decision(session, row, decision, now)
    task_mode = (row.properties or {}).get("escalation_mode") or mode
    task_mode = task_mode if task_mode in MODES else mode
    for rule in rungs:
        level = int(rule.emit["level"])
        action, target = _apply(session, row, rule, task_mode, now)
        session.add(
            TaskEscalation(
                task_id=row.id,
                instance_id=row.instance_id,
                level=level,
                action=action,
                target=target,
                decision_id=decision_id,
                created_at=now,
            )
        )
        row.escalation_level = level
        history(
            session,
            row,
            "task_escalated",
            "flowgate",
            now,
            level=level,
            action=action,
            target=target,
            reason=rule.reason,
            decision_id=decision_id,
        )
        notify(
            session,
            row,
            "task.escalated",
            now,
            level=level,
            action=action,
            target=target,
            reason=rule.reason,
        )
    session.flush()
    row.escalation_check_at = first_check_at(
        row.created_at, row.sla_business_days, row.escalation_level
    )
    return len(rungs)


def _sweep_batch(
    rt: Runtime, rules: RulesService, mode: str, batch: int, now: datetime
) -> tuple[int, int]:
    """One transaction over up to `batch` due tasks; return (tasks looked at, rungs taken)."""
    with rt.uow() as uow:
        rows = (
            uow.session.execute(
                uow.for_update(
                    select(HumanTask)
                    .where(HumanTask.escalation_check_at <= now, HumanTask.status == "open")
                    .order_by(HumanTask.escalation_check_at)
                    .limit(batch),
                    skip_locked=True,
                )
            )
            .scalars()
            .all()
        )
        taken = sum(escalate_task(uow.session, rules, row, now, mode) for row in rows)
        try:
            uow.commit()
        except IntegrityError:
            # Another scheduler took a rung first (the unique key caught it): nothing is lost.
            log.info("escalation sweep lost a race; the other scheduler escalated")
            return 0, 0
        return len(rows), taken


def sweep_escalations(
    rt: Runtime,
    rules: RulesService,
    mode: str = "add_candidates",
    batch: int = 100,
    max_batches: int = 50,
) -> int:
    """Escalate every open task whose next rung may be due; return the rungs taken here.

    Each looked-at task moves its next check into the future, so batches never see it again
    in this sweep; short transactions keep completions from waiting on a long sweep.
    """
    if mode not in MODES:
        raise ValueError(f"escalation mode must be one of {MODES}")
    now = rt.clock()
    taken = 0
    for _ in range(max_batches):
        looked_at, rungs = _sweep_batch(rt, rules, mode, batch, now)
        taken += rungs
        if looked_at < batch:
            break
    return taken
