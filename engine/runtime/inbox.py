"""The approver inbox: who may act on a human task, and the lifecycle commands around it.

Claim, unclaim, delegate and comment change no workflow state, so they never open the state
blob; each is still one transaction that locks the instance row first (the same order as
`complete_task`), writes a history event saying who did it and when, and queues the
notification in the outbox.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.orm import Session

from engine.errors import Conflict, Forbidden, NotFound, ValidationFailed
from engine.runtime.state import to_json_safe
from engine.store.outbox import append_outbox, outbox_row
from engine.store.tables import (
    DecisionRecord,
    Delegation,
    HumanTask,
    Instance,
    InstanceEvent,
    TaskCandidate,
    TaskComment,
)

if TYPE_CHECKING:
    from engine.runtime.commands import Actor, Runtime
    from engine.store.uow import UnitOfWork

STATES = ("created", "claimed", "delegated", "escalated", "completed", "cancelled")
MAX_COMMENT = 4000
MAX_USER = 200  # the width of the user and process-key columns of a delegation
# A delegation's reason is free text shown in every inbox listing the grant; a line or two.
MAX_REASON = 2000
TASK_LINK = "/api/v1/tasks/{task_id}"
INSTANCE_LINK = "/api/v1/instances/{instance_id}"
DIAGRAM_LINK = "/api/v1/definitions/{key}/versions/{version}/bpmn"


# Who may act ----------------------------------------------------------------------------------


def is_candidate(row: HumanTask, actor: Actor) -> bool:
    """Offered to this person by the model: as a candidate user, a group, or to everyone."""
    users, groups = row.candidate_users or [], row.candidate_groups or []
    if actor.user in users or actor.in_any(groups):
        return True
    if users or groups:
        return False
    # No candidates: a model-given assignee alone may work it; otherwise anyone the role
    # matrix lets through (a claim does not narrow who counts as a candidate).
    return row.assignee is None or row.claimed_by is not None


def active_delegation(
    session: Session, delegator: str, delegate: str, now: datetime, process_key: str | None
) -> Delegation | None:
    """A standing delegation from `delegator` to `delegate` valid at `now` for this process."""
    rows = session.execute(
        select(Delegation).where(
            Delegation.delegator == delegator,
            Delegation.delegate == delegate,
            Delegation.valid_from <= now,
            Delegation.valid_to > now,
        )
    ).scalars()
    return next((d for d in rows if d.process_key in (None, process_key)), None)


def _delegation_in_force(session: Session, row: HumanTask, now: datetime) -> None:
    if row.delegation_id is None:
        return
    grant = session.get(Delegation, row.delegation_id)
    if grant is None or not grant.valid_from <= now < grant.valid_to:
        window = f"{grant.valid_from.isoformat()} to {grant.valid_to.isoformat()}" if grant else ""
        raise Forbidden(
            f"the delegation of task {row.id} to {row.assignee} is not in force now ({window})"
        )


def check_can_complete(session: Session, row: HumanTask, actor: Actor, now: datetime) -> None:
    """403 for someone the task is not offered to, 409 when it is done or someone else's."""
    if row.status != "open":
        raise Conflict(f"task {row.id} is already {row.status}")
    if actor.is_admin:
        return
    if row.assignee == actor.user:
        _delegation_in_force(session, row, now)
        return
    if row.assignee and active_delegation(session, row.assignee, actor.user, now, row.process_key):
        return
    if not is_candidate(row, actor):
        raise Forbidden(f"{actor.user} is not a candidate for task {row.id}")
    if row.assignee:
        raise Conflict(f"task {row.id} is claimed by {row.assignee}")


# Side effects shared by every command -------------------------------------------------------


def task_payload(row: HumanTask, **extra: Any) -> dict[str, Any]:
    """What a mail or chat bridge needs to say and link to, without calling back."""
    return to_json_safe(
        {
            "task_id": row.id,
            "name": row.name,
            "element_id": row.element_id,
            "instance_id": row.instance_id,
            "process_key": row.process_key,
            "business_key": row.business_key,
            "state": row.state,
            "assignee": row.assignee,
            "candidate_groups": row.candidate_groups,
            "candidate_users": row.candidate_users,
            "due_at": row.due_at,
            "link": TASK_LINK.format(task_id=row.id),
            **extra,
        }
    )


def task_event(row: HumanTask, event_type: str, now: datetime, **extra: Any) -> dict[str, Any]:
    """A `task.*` outbox row; the key is unique because one task can be claimed twice."""
    key = f"{row.instance_id}:{row.id}:{event_type}:{uuid.uuid4().hex[:12]}"
    return outbox_row(key, event_type, row.instance_id, task_payload(row, **extra), now)


def notify(session: Session, row: HumanTask, event_type: str, now: datetime, **extra: Any) -> None:
    """Queue `task.*` for the webhooks at once (a claim, delegation or escalation; an engine
    command queues its own with the instance's other rows)."""
    append_outbox(session, [task_event(row, event_type, now, **extra)])


def history(
    session: Session, row: HumanTask, kind: str, who: str, now: datetime, **details: Any
) -> None:
    session.add(
        InstanceEvent(
            instance_id=row.instance_id,
            at=now,
            type=kind,
            element_id=row.element_id,
            actor=who,
            details=to_json_safe({"task_id": row.id, **details}),
        )
    )


def offer_status(row: HumanTask) -> str:
    """A candidate row's status: `open` only while the task is offered and nobody holds it."""
    if row.status != "open":
        return row.status
    return "assigned" if row.assignee else "open"


def candidate(row: HumanTask, kind: str, name: str) -> TaskCandidate:
    return TaskCandidate(
        task_id=row.id,
        kind=kind,
        name=name,
        status=offer_status(row),
        due_at=row.due_at,
        created_at=row.created_at,
    )


# Run by every completion, claim and release: built once (see engine/runtime/commands.py), on
# the table rather than the mapped class, so it skips the ORM's bulk-update set-up.
_CANDIDATES = TaskCandidate.__table__
_OFFER_STATUS = (
    update(_CANDIDATES)
    .where(_CANDIDATES.c.task_id == bindparam("offered_task"))
    .values(status=bindparam("offer_status"))
)


def sync_offer(session: Session, row: HumanTask) -> None:
    """Keep candidate rows in step, so a group inbox is read from one index alone.

    The update goes straight to the connection, without flushing the session first: the task
    row's own change can wait for the command's one flush. Candidate rows not yet flushed are
    set here instead, as the update cannot see them.
    """
    status = offer_status(row)
    for pending in session.new:
        if isinstance(pending, TaskCandidate) and pending.task_id == row.id:
            pending.status = status
    session.connection().execute(_OFFER_STATUS, {"offered_task": row.id, "offer_status": status})


def close(session: Session, row: HumanTask, status: str, now: datetime) -> None:
    """Mark a task completed or cancelled, and take it out of every inbox and the SLA sweep."""
    row.status = status
    row.state = status
    row.completed_at = row.completed_at or now
    row.escalation_check_at = None
    sync_offer(session, row)


# Commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Locked:
    instance: Instance
    task: HumanTask


def _lock(uow: UnitOfWork, task_id: str) -> Locked:
    """Lock the instance, then the task, the order every writer of a task uses."""
    session = uow.session
    row = session.get(HumanTask, task_id)
    if row is None:
        raise NotFound(f"no task '{task_id}'")
    instance = session.execute(
        uow.for_update(select(Instance).where(Instance.id == row.instance_id))
    ).scalar_one()
    task = session.execute(
        uow.for_update(select(HumanTask).where(HumanTask.id == task_id)).execution_options(
            populate_existing=True
        )
    ).scalar_one()
    return Locked(instance, task)


def _require_open(row: HumanTask) -> None:
    if row.status != "open":
        raise Conflict(f"task {row.id} is already {row.status}")


def claim(rt: Runtime, task_id: str, actor: Actor) -> HumanTask:
    """Take an offered task; claiming one's own task again changes nothing.

    A task someone else holds is theirs (409), except to an admin, who takes it over: the way
    to move work from a person who is away and left it claimed. The history and the
    `task.assigned` event name whom it was taken from.
    """
    with rt.uow() as uow:
        row = _lock(uow, task_id).task
        now = rt.clock()
        _require_open(row)
        if row.assignee == actor.user:
            uow.commit()  # nothing changed; committing keeps the row readable after the block
            return row
        if not (actor.is_admin or is_candidate(row, actor)):
            raise Forbidden(f"{actor.user} is not a candidate for task {task_id}")
        taken_from = row.assignee
        if taken_from is not None and not actor.is_admin:
            raise Conflict(f"task {task_id} is already claimed by {taken_from}")
        row.assignee = row.claimed_by = actor.user
        row.claimed_at = now
        row.state = "claimed"
        # A delegation ends with the takeover: segregation of duties would otherwise judge the
        # admin as acting for whoever had delegated it.
        row.delegated_to = row.delegated_by = row.delegation_id = None
        sync_offer(uow.session, row)
        taken = {"taken_from": taken_from} if taken_from is not None else {}
        history(uow.session, row, "task_claimed", actor.user, now, **taken)
        notify(
            uow.session,
            row,
            "task.assigned",
            now,
            assigned_by=actor.user,
            reason="taken over" if taken else "claimed",
            **taken,
        )
        uow.commit()
        return row


def unclaim(rt: Runtime, task_id: str, actor: Actor) -> HumanTask:
    """Give a claimed or delegated task back to its candidates."""
    with rt.uow() as uow:
        row = _lock(uow, task_id).task
        now = rt.clock()
        _require_open(row)
        if row.assignee is None:
            raise Conflict(f"task {task_id} is not claimed")
        if row.assignee != actor.user and not actor.is_admin:
            if is_candidate(row, actor):
                raise Conflict(f"task {task_id} is claimed by {row.assignee}")
            raise Forbidden(f"{actor.user} is not a candidate for task {task_id}")
        if row.claimed_by is None and not (row.candidate_users or row.candidate_groups):
            # The model named this person alone; releasing it would offer it to everyone.
            raise Conflict(f"task {task_id} was assigned by the model and has no candidates")
        released = row.assignee
        # A task the model gave one person, taken over by an admin, goes back to that person:
        # with no candidates, "back to the candidates" would leave it to admins alone.
        returned_to = None
        if not (row.candidate_users or row.candidate_groups):
            returned_to = _model_assignee(uow.session, row)
        row.assignee, row.claimed_by, row.claimed_at = returned_to, None, None
        row.delegated_to = row.delegated_by = row.delegation_id = None
        row.state = "escalated" if row.escalation_level >= 2 else "created"
        sync_offer(uow.session, row)
        back = {"returned_to": returned_to} if returned_to else {}
        history(uow.session, row, "task_unclaimed", actor.user, now, released=released, **back)
        if returned_to:
            notify(
                uow.session, row, "task.assigned", now, assigned_by=actor.user, reason="returned"
            )
        uow.commit()
        return row


def _model_assignee(session: Session, row: HumanTask) -> str | None:
    """Whom the model assigned the task to when it was created (its `task_created` event)."""
    created = session.scalars(
        select(InstanceEvent).where(
            InstanceEvent.instance_id == row.instance_id, InstanceEvent.type == "task_created"
        )
    )
    details = (event.details or {} for event in created)
    return next((d.get("assignee") for d in details if d.get("task_id") == row.id), None)


def delegate(rt: Runtime, task_id: str, to_user: str, actor: Actor) -> HumanTask:
    """Hand a task to someone the model offers it to, or to a standing delegate.

    The delegate works it as assignee. When the hand-over rests on a delegation row, that
    row's window still applies at completion: outside it the delegate is refused.
    """
    to_user = (to_user or "").strip()
    if not to_user:
        raise ValidationFailed("'user' is required", [{"field": "user", "message": "is required"}])
    if len(to_user) > MAX_USER:  # the assignee column's width
        message = f"must be at most {MAX_USER} characters"
        raise ValidationFailed(f"'user' {message}", [{"field": "user", "message": message}])
    with rt.uow() as uow:
        session = uow.session
        row = _lock(uow, task_id).task
        now = rt.clock()
        _require_open(row)
        if not actor.is_admin and row.assignee != actor.user:
            if not is_candidate(row, actor):
                raise Forbidden(f"{actor.user} is not a candidate for task {task_id}")
            if row.assignee is not None:
                raise Conflict(f"task {task_id} is claimed by {row.assignee}")
        grant = None
        if not actor.is_admin and to_user not in (row.candidate_users or []):
            grant = active_delegation(session, actor.user, to_user, now, row.process_key)
            if grant is None:
                raise Forbidden(
                    f"{to_user} is neither a candidate user of task {task_id} nor a delegate"
                    f" of {actor.user} in force now"
                )
        row.delegated_by = actor.user
        row.assignee = row.delegated_to = to_user
        row.delegation_id = grant.id if grant is not None else None
        row.state = "delegated"
        sync_offer(session, row)
        history(
            session,
            row,
            "task_delegated",
            actor.user,
            now,
            to=to_user,
            delegation_id=row.delegation_id,
        )
        notify(session, row, "task.assigned", now, assigned_by=actor.user, reason="delegated")
        uow.commit()
        return row


def may_comment(session: Session, row: HumanTask, actor: Actor, now: datetime) -> bool:
    if actor.is_admin or actor.user in (row.assignee, row.completed_by, row.delegated_by):
        return True
    if row.assignee and active_delegation(session, row.assignee, actor.user, now, row.process_key):
        return True
    return is_candidate(row, actor)


def comment(rt: Runtime, task_id: str, text: str, actor: Actor) -> TaskComment:
    """Add an immutable comment; it shows on the task and in the instance's history."""
    text = (text or "").strip()
    if not text or len(text) > MAX_COMMENT:
        raise ValidationFailed(
            "the comment is empty or too long",
            [{"field": "text", "message": f"must be 1 to {MAX_COMMENT} characters"}],
        )
    with rt.uow() as uow:
        session = uow.session
        row = _lock(uow, task_id).task
        now = rt.clock()
        if not may_comment(session, row, actor, now):
            raise Forbidden(f"{actor.user} may not comment on task {task_id}")
        note = TaskComment(
            task_id=row.id,
            instance_id=row.instance_id,
            author=actor.user,
            text=text,
            created_at=now,
        )
        session.add(note)
        session.flush()
        history(session, row, "task_commented", actor.user, now, comment_id=note.id, text=text)
        uow.commit()
        return note


def add_delegation(
    rt: Runtime,
    actor: Actor,
    delegate_user: str,
    valid_from: datetime,
    valid_to: datetime,
    delegator: str | None = None,
    process_key: str | None = None,
    reason: str | None = None,
) -> Delegation:
    """Record that `delegate_user` may act for the actor (an admin may name the delegator)."""
    errors = []
    if not delegate_user.strip():
        errors.append({"field": "delegate", "message": "is required"})
    if valid_to <= valid_from:
        errors.append({"field": "valid_to", "message": "must be after valid_from"})
    if delegator not in (None, actor.user) and not actor.is_admin:
        errors.append({"field": "delegator", "message": "only an admin may delegate for others"})
    if delegate_user == (delegator or actor.user):
        errors.append({"field": "delegate", "message": "must be someone else"})
    for name, value in (
        ("delegate", delegate_user),
        ("delegator", delegator),
        ("process_key", process_key),
    ):
        if value is not None and len(value) > MAX_USER:
            errors.append({"field": name, "message": f"must be at most {MAX_USER} characters"})
    if reason is not None and len(reason) > MAX_REASON:
        errors.append({"field": "reason", "message": f"must be at most {MAX_REASON} characters"})
    if errors:
        raise ValidationFailed("the delegation is invalid", errors)
    with rt.uow() as uow:
        grant = Delegation(
            delegator=delegator or actor.user,
            delegate=delegate_user.strip(),
            process_key=process_key,
            valid_from=valid_from,
            valid_to=valid_to,
            reason=reason,
            created_by=actor.user,
            created_at=rt.clock(),
        )
        uow.session.add(grant)
        uow.commit()
        return grant


# The context a person needs to decide ---------------------------------------------------------

_PARTIES = {"customer": ("customer_id", "customer"), "supplier": ("supplier_id", "supplier")}
_AMOUNT_SUFFIXES = ("amount", "total", "limit", "exposure", "price", "value")


def _nested(variables: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """The variables and each object one level down (`order`, `requisition`, ...)."""
    scopes = [("", variables)]
    scopes += [(f"{k}.", v) for k, v in variables.items() if isinstance(v, dict)]
    return scopes


def _party(variables: dict[str, Any], names: tuple[str, ...]) -> Any:
    for _prefix, scope in _nested(variables):
        for name in names:
            if scope.get(name) not in (None, ""):
                return scope[name]
    return None


def _money(value: Any) -> Decimal | None:
    if isinstance(value, bool) or not isinstance(value, int | str | float | Decimal):
        return None
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def _lines_total(lines: Any) -> Decimal | None:
    if not isinstance(lines, list) or not lines:
        return None
    total = Decimal(0)
    for line in lines:
        qty = _money(line.get("qty")) if isinstance(line, dict) else None
        price = _money(line.get("unit_price")) if isinstance(line, dict) else None
        if qty is None or price is None:
            return None
        total += qty * price
    return total


def _amounts(variables: dict[str, Any]) -> list[dict[str, Any]]:
    found = []
    for prefix, scope in _nested(variables):
        for key, value in scope.items():
            if key.lower().endswith(_AMOUNT_SUFFIXES) and (number := _money(value)) is not None:
                found.append({"field": f"{prefix}{key}", "value": str(number)})
        if prefix and (total := _lines_total(scope.get("lines"))) is not None:
            found.append({"field": f"{prefix}lines_total", "value": str(total)})
    return found[:20]


def _causing_decision(session: Session, row: HumanTask) -> dict[str, Any] | None:
    record = session.execute(
        select(DecisionRecord)
        .where(
            DecisionRecord.instance_id == row.instance_id,
            DecisionRecord.created_at <= row.created_at,
        )
        .order_by(DecisionRecord.id.desc())
        .limit(1)
    ).scalar_one_or_none()
    if record is None:
        return None
    return {
        "id": record.id,
        "ruleset_key": record.ruleset_key,
        "ruleset_version": record.ruleset_version,
        "outcome": record.outcome,
        "fired": [
            {"rule_id": f.get("rule_id"), "outcome": f.get("outcome"), "reason": f.get("reason")}
            for f in record.record.get("fired", [])
        ],
        "link": f"/api/v1/decisions/{record.id}",
    }


def task_context(session: Session, row: HumanTask) -> dict[str, Any]:
    """Who and how much this is about, why it is here, and where to look further."""
    instance = session.get(Instance, row.instance_id)
    variables = instance.variables if instance is not None and instance.variables else {}
    version = instance.version if instance is not None else None
    return {
        "business_key": row.business_key,
        "process_key": row.process_key,
        "customer": _party(variables, _PARTIES["customer"]),
        "supplier": _party(variables, _PARTIES["supplier"]),
        "currency": _party(variables, ("currency",)),
        "amounts": _amounts(variables),
        "decision": _causing_decision(session, row),
        "escalation_level": row.escalation_level,
        "links": {
            "task": TASK_LINK.format(task_id=row.id),
            "instance": INSTANCE_LINK.format(instance_id=row.instance_id),
            "diagram": DIAGRAM_LINK.format(key=row.process_key, version=version),
            "element_id": row.element_id,
        },
    }


def comments_of(session: Session, task_id: str) -> list[dict[str, Any]]:
    return [
        {"id": c.id, "author": c.author, "text": c.text, "created_at": c.created_at.isoformat()}
        for c in session.execute(
            select(TaskComment).where(TaskComment.task_id == task_id).order_by(TaskComment.id)
        ).scalars()
    ]
