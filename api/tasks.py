"""The approver inbox: list, inspect and complete human tasks (DESIGN §4)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, request
from sqlalchemy import and_, exists, func, or_, select

from api.errors import BadRequest
from api.requests import actor, json_body, page_args, runtime
from engine.errors import NotFound
from engine.runtime import commands
from engine.runtime.commands import Actor
from engine.store.tables import HumanTask, TaskCandidate

bp = Blueprint("tasks", __name__, url_prefix="/api/v1/tasks")

SEE_ALL = {"admin", "auditor"}


def task_view(row: HumanTask) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "element_id": row.element_id,
        "instance_id": row.instance_id,
        "process_key": row.process_key,
        "business_key": row.business_key,
        "status": row.status,
        "assignee": row.assignee,
        "candidate_groups": row.candidate_groups,
        "candidate_users": row.candidate_users,
        "due_at": row.due_at.isoformat() if row.due_at else None,
        "created_at": row.created_at.isoformat(),
        "completed_at": row.completed_at.isoformat() if row.completed_at else None,
        "completed_by": row.completed_by,
        "form": {"fields": row.form},
        "properties": row.properties,
        "context": {
            "business_key": row.business_key,
            "instance": f"/api/v1/instances/{row.instance_id}",
        },
    }


def _candidate(kind: str, names: list[str]) -> Any:
    return exists().where(
        TaskCandidate.task_id == HumanTask.id,
        TaskCandidate.kind == kind,
        TaskCandidate.name.in_(names),
    )


def visible_to(who: Actor, scope: str) -> Any:
    """Tasks a person may see in their inbox for `scope` (mine, group, all)."""
    groups = sorted(who.groups | who.roles)
    offered = and_(
        HumanTask.assignee.is_(None),
        or_(_candidate("user", [who.user]), _candidate("group", groups)),
    )
    if scope == "group":
        return and_(HumanTask.assignee.is_(None), _candidate("group", groups))
    if scope == "all" and who.roles & SEE_ALL:
        return True
    return or_(HumanTask.assignee == who.user, offered)


@bp.get("")
def list_tasks():
    scope = request.args.get("scope", "mine")
    if scope not in {"mine", "group", "all"}:
        raise BadRequest("scope must be mine, group or all")
    status = request.args.get("status", "open")
    if status not in {"open", "completed", "cancelled"}:
        raise BadRequest("status must be open, completed or cancelled")
    page, size = page_args()
    stmt = select(HumanTask).where(HumanTask.status == status, visible_to(actor(), scope))
    for name in ("process_key", "business_key"):
        if request.args.get(name):
            stmt = stmt.where(getattr(HumanTask, name) == request.args[name])
    rt = runtime()
    with rt.uow(write=False) as uow:
        total = uow.session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        rows = uow.session.execute(
            stmt.order_by(HumanTask.created_at, HumanTask.id).offset((page - 1) * size).limit(size)
        ).scalars()
        items = [task_view(r) for r in rows]
    return {"items": items, "total": total, "page": page, "page_size": size}


@bp.get("/<task_id>")
def get_task(task_id: str):
    rt = runtime()
    with rt.uow(write=False) as uow:
        row = uow.session.get(HumanTask, task_id)
        if row is None:
            raise NotFound(f"no task '{task_id}'")
        return task_view(row)


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
