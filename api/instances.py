"""Process instances: start (idempotent), list, inspect, cancel, retry (DESIGN §4)."""

from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import func, select

from api.errors import BadRequest
from api.masking import masked
from api.requests import actor, field, json_body, page_args, runtime
from engine.errors import NotFound
from engine.runtime import commands
from engine.store.tables import DecisionRecord, Instance, InstanceEvent

bp = Blueprint("instances", __name__, url_prefix="/api/v1")

STATUSES = {"running", "completed", "cancelled", "incident"}


@bp.post("/processes/<key>/instances")
def start(key: str):
    body = json_body()
    business_key = field(body, "business_key", str, required=False)
    variables = field(body, "variables", dict, required=False, default={})
    version = field(body, "version", int, required=False)
    if version is not None and not 1 <= version <= 2**31 - 1:
        raise BadRequest(
            "'version' is out of range", [{"field": "version", "message": "must be 1 to 2^31-1"}]
        )
    idem = request.headers.get("Idempotency-Key")
    if idem is not None and not 0 < len(idem) <= 200:
        raise BadRequest("Idempotency-Key must be 1 to 200 characters")
    result = commands.start(runtime(), key, business_key, variables, actor(), idem, version)
    return result.body, result.status_code


@bp.get("/instances")
def list_instances():
    page, size = page_args()
    stmt = select(Instance)
    for name in ("process_key", "business_key", "status"):
        value = request.args.get(name)
        if value:
            if name == "status" and value not in STATUSES:
                raise BadRequest(f"status must be one of {sorted(STATUSES)}")
            stmt = stmt.where(getattr(Instance, name) == value)
    rt = runtime()
    with rt.uow(write=False) as uow:
        total = uow.session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        rows = uow.session.execute(
            stmt.order_by(Instance.created_at.desc(), Instance.id)
            .offset((page - 1) * size)
            .limit(size)
        ).scalars()
        items = [
            {
                "id": r.id,
                "process_key": r.process_key,
                "version": r.version,
                "business_key": r.business_key,
                "status": r.status,
                "created_at": r.created_at.isoformat(),
                "updated_at": r.updated_at.isoformat(),
            }
            for r in rows
        ]
    return {"items": items, "total": total, "page": page, "page_size": size}


@bp.get("/instances/<instance_id>")
def get_instance(instance_id: str):
    rt = runtime()
    with rt.uow(write=False) as uow:
        instance = uow.session.get(Instance, instance_id)
        if instance is None:
            raise NotFound(f"no instance '{instance_id}'")
        body = commands.instance_summary(uow, instance)
        body["variables"] = masked(instance.variables)
        body["created_at"] = instance.created_at.isoformat()
        body["ended_at"] = instance.ended_at.isoformat() if instance.ended_at else None
        body["history"] = [
            {
                "id": e.id,
                "at": e.at.isoformat(),
                "type": e.type,
                "element_id": e.element_id,
                "actor": e.actor,
                "details": e.details,
            }
            for e in uow.session.execute(
                select(InstanceEvent)
                .where(InstanceEvent.instance_id == instance_id)
                .order_by(InstanceEvent.id)
            ).scalars()
        ]
        body["decisions"] = [
            {
                "id": d.id,
                "element_id": d.element_id,
                "ruleset_key": d.ruleset_key,
                "ruleset_version": d.ruleset_version,
                "outcome": d.outcome,
            }
            for d in uow.session.execute(
                select(DecisionRecord)
                .where(DecisionRecord.instance_id == instance_id)
                .order_by(DecisionRecord.id)
            ).scalars()
        ]
    return body


@bp.post("/instances/<instance_id>/cancel")
def cancel_instance(instance_id: str):
    body = json_body(required=False)
    reason = field(body, "reason", str, required=False, default="")
    return commands.cancel(runtime(), instance_id, reason, actor()).body


@bp.post("/instances/<instance_id>/retry")
def retry_instance(instance_id: str):
    return commands.retry(runtime(), instance_id, actor()).body
