"""Process instances: start (idempotent), list, inspect, cancel, retry (DESIGN §4)."""

from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import defer

from api.errors import BadRequest
from api.masking import masked
from api.requests import actor, field, json_body, page_args, runtime, text_field
from engine.errors import Conflict, NotFound
from engine.handlers import o2c
from engine.runtime import commands
from engine.store.tables import DecisionRecord, Instance, InstanceEvent, MessageSubscription

bp = Blueprint("instances", __name__, url_prefix="/api/v1")

STATUSES = {"running", "completed", "cancelled", "incident"}
# Processes whose model undoes its own work on a cancellation message, with the longest reason
# it takes: O2C's `order_cancelled` event subprocess reverses the postings and takes the order
# out of the customer's exposure. Stopping the tokens alone would leave the order open, its
# number taken and its postings standing, so an admin cancel is sent through that message.
CANCELLED_BY_MESSAGE = {"order_to_cash": (o2c.CANCEL_MESSAGE, o2c.CANCEL_REASON_MAX)}


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


# Built once, and without what the answer does not show: the state blob, and each decision's
# full record (facts, parameters, trace), which GET /decisions/{id} serves. ERPs poll this
# endpoint while they wait; it cost 10 ms on SQLite with those loaded and built per call.
_INSTANCE = (
    select(Instance).options(defer(Instance.state)).where(Instance.id == bindparam("instance_id"))
)
_HISTORY = (
    select(
        InstanceEvent.id,
        InstanceEvent.at,
        InstanceEvent.type,
        InstanceEvent.element_id,
        InstanceEvent.actor,
        InstanceEvent.details,
    )
    .where(InstanceEvent.instance_id == bindparam("instance_id"))
    .order_by(InstanceEvent.id)
)
_DECISIONS = (
    select(
        DecisionRecord.id,
        DecisionRecord.element_id,
        DecisionRecord.ruleset_key,
        DecisionRecord.ruleset_version,
        DecisionRecord.outcome,
    )
    .where(DecisionRecord.instance_id == bindparam("instance_id"))
    .order_by(DecisionRecord.id)
)


@bp.get("/instances/<instance_id>")
def get_instance(instance_id: str):
    rt = runtime()
    params = {"instance_id": instance_id}
    with rt.uow(write=False) as uow:
        instance = uow.session.execute(_INSTANCE, params).scalar_one_or_none()
        if instance is None:
            raise NotFound(f"no instance '{instance_id}'")
        body = commands.instance_summary(uow, instance)
        body["variables"] = masked(instance.variables)
        body["created_at"] = instance.created_at.isoformat()
        body["ended_at"] = instance.ended_at.isoformat() if instance.ended_at else None
        body["history"] = [
            {**row._asdict(), "at": row.at.isoformat()}
            for row in uow.session.execute(_HISTORY, params)
        ]
        body["decisions"] = [row._asdict() for row in uow.session.execute(_DECISIONS, params)]
    return body


_LISTENING = select(MessageSubscription).where(
    MessageSubscription.instance_id == bindparam("instance_id"),
    MessageSubscription.message_name == bindparam("name"),
)


@bp.post("/instances/<instance_id>/cancel")
def cancel_instance(instance_id: str):
    body = json_body(required=False)
    rt = runtime()
    with rt.uow(write=False) as uow:
        instance = uow.session.execute(_INSTANCE, {"instance_id": instance_id}).scalar_one_or_none()
        by_message = instance is not None and CANCELLED_BY_MESSAGE.get(instance.process_key)
        if not by_message or instance.status in ("completed", "cancelled"):
            reason = field(body, "reason", str, required=False, default="")
            return commands.cancel(rt, instance_id, reason, actor()).body
        name, longest = by_message
        params = {"instance_id": instance_id, "name": name}
        subscription = uow.session.execute(_LISTENING, params).scalars().first()
        if subscription is None:
            raise Conflict(
                f"instance {instance_id} is not listening for '{name}', which cancels"
                f" {instance.process_key} and undoes its work; cancelling it here would not"
            )
        key = subscription.correlation_key
    reason = text_field(body, "reason", longest, required=False)
    payload = {"reason": reason} if reason and reason.strip() else {}
    delivered = commands.deliver_message(rt, name, key, payload, None, actor())
    if delivered.status_code != 200:
        # It ended (paid and closed, say) since it was looked at; the buffered message expires.
        raise Conflict(f"instance {instance_id} ended before '{name}' reached it")
    with rt.uow(write=False) as uow:
        instance = uow.session.execute(_INSTANCE, {"instance_id": instance_id}).scalar_one()
        return {**commands.instance_summary(uow, instance), "cancelled_by": name}


@bp.post("/instances/<instance_id>/retry")
def retry_instance(instance_id: str):
    return commands.retry(runtime(), instance_id, actor()).body
