"""The approver inbox: list, inspect, claim, delegate, comment and complete tasks (DESIGN §4)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from flask import Blueprint, request
from sqlalchemy import exists, func, or_, select, union, union_all
from sqlalchemy.orm import Session, aliased

from api.errors import BadRequest
from api.masking import masked
from api.requests import actor, field, json_body, page_args, runtime, utc_instant
from engine.errors import NotFound
from engine.runtime import commands, inbox
from engine.runtime.commands import Actor
from engine.runtime.forms import form_schema
from engine.store.tables import Delegation, HumanTask, TaskCandidate, TaskEscalation

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks")
delegations_bp = Blueprint("delegations", __name__, url_prefix="/api/v1/delegations")

SEE_ALL = {"admin", "auditor"}
SCOPES = {"mine", "group", "all"}
STATUSES = {"open", "completed", "cancelled"}
SORTS = {
    "due_at": (HumanTask.due_at.asc().nulls_last(),),
    "-due_at": (HumanTask.due_at.desc().nulls_last(),),
    "created_at": (HumanTask.created_at.asc(),),
    "-created_at": (HumanTask.created_at.desc(),),
    "escalation": (HumanTask.escalation_level.desc(), HumanTask.due_at.asc().nulls_last()),
}
ENTRY_SORTS = {
    "due_at": lambda e: e.c.due_at.asc().nulls_last(),
    "-due_at": lambda e: e.c.due_at.desc().nulls_last(),
    "created_at": lambda e: e.c.created_at.asc(),
    "-created_at": lambda e: e.c.created_at.desc(),
}


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def task_view(row: HumanTask) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "element_id": row.element_id,
        "instance_id": row.instance_id,
        "process_key": row.process_key,
        "business_key": row.business_key,
        "status": row.status,
        "state": row.state,
        "assignee": row.assignee,
        "candidate_groups": row.candidate_groups,
        "candidate_users": row.candidate_users,
        "claimed_by": row.claimed_by,
        "claimed_at": _iso(row.claimed_at),
        "delegated_to": row.delegated_to,
        "delegated_by": row.delegated_by,
        "due_at": _iso(row.due_at),
        "sla_business_days": row.sla_business_days,
        "escalation_level": row.escalation_level,
        "created_at": row.created_at.isoformat(),
        "completed_at": _iso(row.completed_at),
        "completed_by": row.completed_by,
        "form": {"fields": row.form},
        "properties": row.properties,
        "context": {
            "business_key": row.business_key,
            "instance": inbox.INSTANCE_LINK.format(instance_id=row.instance_id),
            "link": inbox.TASK_LINK.format(task_id=row.id),
        },
    }


def _entries(who: Actor, scope: str, status: str, overdue_at: datetime | None) -> Any:
    """(task_id, due_at, created_at) of every task in this inbox, from covering indexes only.

    Offered tasks come from the candidate index, held ones from the assignee index, closed ones
    also from the completed-by index. None when the scope is every task.
    """
    if scope == "all" and who.roles & SEE_ALL:
        return None

    def due(stmt: Any, column: Any) -> Any:
        return stmt if overdue_at is None else stmt.where(column < overdue_at)

    groups = sorted(who.groups | who.roles)
    offered = select(TaskCandidate.task_id, TaskCandidate.due_at, TaskCandidate.created_at)
    offered = due(offered.where(TaskCandidate.status == status), TaskCandidate.due_at)
    by_group = offered.where(TaskCandidate.kind == "group", TaskCandidate.name.in_(groups))
    if scope == "group":
        return by_group.subquery("inbox")
    by_me = select(HumanTask.id.label("task_id"), HumanTask.due_at, HumanTask.created_at)
    by_me = due(by_me.where(HumanTask.status == status), HumanTask.due_at)
    held = by_me.where(HumanTask.assignee == who.user)
    if status != "open":
        return union(held, by_me.where(HumanTask.completed_by == who.user)).subquery("inbox")
    also_group = aliased(TaskCandidate)
    by_name = offered.where(
        TaskCandidate.kind == "user",
        TaskCandidate.name == who.user,
        ~exists().where(
            also_group.task_id == TaskCandidate.task_id,
            also_group.kind == "group",
            also_group.name.in_(groups),
        ),
    )
    # Disjoint parts, so no de-duplication pass: an `open` candidate row is an unheld task, and
    # a task offered both by name and to one of the groups is counted with the group.
    return union_all(by_group, by_name, held).subquery("inbox")


def _choice(name: str, allowed: set[str], default: str) -> str:
    value = request.args.get(name, default)
    if value not in allowed:
        raise BadRequest(
            f"{name} must be one of {sorted(allowed)}",
            [{"field": name, "message": f"must be one of {sorted(allowed)}"}],
        )
    return value


@bp.get("")
def list_tasks():
    scope = _choice("scope", SCOPES, "mine")
    status = _choice("status", STATUSES, "open")
    sort = _choice("sort", set(SORTS), "created_at")
    overdue = _choice("overdue", {"true", "false"}, "false") == "true"
    page, size = page_args()
    rt = runtime()
    filters = {
        n: request.args[n] for n in ("process_key", "business_key", "state") if n in request.args
    }
    query = InboxQuery(actor(), scope, status, filters, sort, rt.clock() if overdue else None)
    with rt.uow(write=False) as uow:
        total, rows = inbox_page(uow.session, query, page, size)
        items = [task_view(r) for r in rows]
    pages = (total + size - 1) // size
    return {"items": items, "total": total, "page": page, "page_size": size, "pages": pages}


@dataclass(frozen=True)
class InboxQuery:
    """One `GET /tasks`; `bench/bench_inbox.py` times exactly this."""

    who: Actor
    scope: str
    status: str
    filters: dict[str, str]
    sort: str = "created_at"
    overdue_at: datetime | None = None


def inbox_page(
    session: Session, query: InboxQuery, page: int, size: int
) -> tuple[int, list[HumanTask]]:
    """The total count and one page, in a stable order (the sort key, then the id)."""
    entries = _entries(query.who, query.scope, query.status, query.overdue_at)
    filters = {k: v for k, v in query.filters.items() if v}
    offset = (page - 1) * size
    if entries is not None and not filters and query.sort in ENTRY_SORTS:
        # The fast path: count and order the inbox's index entries; read only the page's rows.
        total = session.execute(select(func.count()).select_from(entries)).scalar_one()
        ids = list(
            session.execute(
                select(entries.c.task_id)
                .order_by(ENTRY_SORTS[query.sort](entries), entries.c.task_id)
                .offset(offset)
                .limit(size)
            ).scalars()
        )
        found = {
            r.id: r
            for r in session.execute(select(HumanTask).where(HumanTask.id.in_(ids))).scalars()
        }
        return total, [found[i] for i in ids if i in found]
    stmt = select(HumanTask).where(HumanTask.status == query.status)
    if entries is not None:
        stmt = stmt.where(HumanTask.id.in_(select(entries.c.task_id)))
    for name, value in filters.items():
        stmt = stmt.where(getattr(HumanTask, name) == value)
    if query.overdue_at is not None:
        stmt = stmt.where(HumanTask.due_at < query.overdue_at)
    total = session.execute(stmt.with_only_columns(func.count()).order_by(None)).scalar_one()
    rows = session.execute(
        stmt.order_by(*SORTS[query.sort], HumanTask.id).offset(offset).limit(size)
    ).scalars()
    return total, list(rows)


@bp.get("/<task_id>")
def get_task(task_id: str):
    rt = runtime()
    with rt.uow(write=False) as uow:
        row = uow.session.get(HumanTask, task_id)
        if row is None:
            raise NotFound(f"no task '{task_id}'")
        body = task_view(row)
        body["form"]["schema"] = form_schema(row.form)
        body["context"] = masked(inbox.task_context(uow.session, row))
        body["comments"] = inbox.comments_of(uow.session, task_id)
        body["escalations"] = [
            {
                "level": e.level,
                "action": e.action,
                "target": e.target,
                "at": e.created_at.isoformat(),
            }
            for e in uow.session.execute(
                select(TaskEscalation)
                .where(TaskEscalation.task_id == task_id)
                .order_by(TaskEscalation.level)
            ).scalars()
        ]
        return body


@bp.post("/<task_id>/claim")
def claim(task_id: str):
    return task_view(inbox.claim(runtime(), task_id, actor()))


@bp.post("/<task_id>/unclaim")
def unclaim(task_id: str):
    return task_view(inbox.unclaim(runtime(), task_id, actor()))


@bp.post("/<task_id>/delegate")
def delegate(task_id: str):
    user = field(json_body(), "user", str)
    return task_view(inbox.delegate(runtime(), task_id, user, actor()))


@bp.get("/<task_id>/comments")
def list_comments(task_id: str):
    rt = runtime()
    with rt.uow(write=False) as uow:
        if uow.session.get(HumanTask, task_id) is None:
            raise NotFound(f"no task '{task_id}'")
        return {"items": inbox.comments_of(uow.session, task_id)}


@bp.post("/<task_id>/comments")
def add_comment(task_id: str):
    text = field(json_body(), "text", str)
    note = inbox.comment(runtime(), task_id, text, actor())
    return {
        "id": note.id,
        "task_id": note.task_id,
        "author": note.author,
        "text": note.text,
        "created_at": note.created_at.isoformat(),
    }, 201


@bp.post("/<task_id>/complete")
def complete(task_id: str):
    body = json_body(required=False)
    variables = body.get("variables", {})
    if not isinstance(variables, dict):
        raise BadRequest(
            "'variables' must be an object",
            [{"field": "variables", "message": "must be an object"}],
        )
    return commands.complete_task(runtime(), task_id, variables, actor()).body


def _instant(body: dict[str, Any], name: str) -> datetime:
    value = utc_instant(field(body, name, str))
    if value is None:
        raise BadRequest(
            f"'{name}' must be an ISO datetime with a time zone",
            [{"field": name, "message": "must be an ISO datetime with a time zone"}],
        )
    return value


def delegation_view(grant: Delegation) -> dict[str, Any]:
    return {
        "id": grant.id,
        "delegator": grant.delegator,
        "delegate": grant.delegate,
        "process_key": grant.process_key,
        "valid_from": grant.valid_from.isoformat(),
        "valid_to": grant.valid_to.isoformat(),
        "reason": grant.reason,
        "created_by": grant.created_by,
    }


@delegations_bp.post("")
def create_delegation():
    body = json_body()
    grant = inbox.add_delegation(
        runtime(),
        actor(),
        field(body, "delegate", str),
        _instant(body, "valid_from"),
        _instant(body, "valid_to"),
        delegator=field(body, "delegator", str, required=False),
        process_key=field(body, "process_key", str, required=False),
        reason=field(body, "reason", str, required=False),
    )
    return delegation_view(grant), 201


@delegations_bp.get("")
def list_delegations():
    who = actor()
    stmt = select(Delegation).order_by(Delegation.id)
    if not who.roles & SEE_ALL:
        stmt = stmt.where(or_(Delegation.delegator == who.user, Delegation.delegate == who.user))
    rt = runtime()
    with rt.uow(write=False) as uow:
        return {"items": [delegation_view(g) for g in uow.session.execute(stmt).scalars()]}
