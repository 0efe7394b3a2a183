"""What was (or could not be) sent to the ERP: the outbox, with its dead letters."""

from __future__ import annotations

from flask import Blueprint, request
from sqlalchemy import select

from api.errors import BadRequest
from api.requests import page_args, runtime
from engine.store.tables import OutboxMessage

bp = Blueprint("outbox", __name__, url_prefix="/api/v1/outbox")

STATUSES = ("pending", "sent", "dead")


@bp.get("")
def list_outbox():
    page, size = page_args()
    stmt = select(OutboxMessage).order_by(OutboxMessage.id)
    status = request.args.get("status")
    if status:
        if status not in STATUSES:
            raise BadRequest(
                f"status must be one of {', '.join(STATUSES)}",
                [{"field": "status", "message": "unknown status"}],
            )
        stmt = stmt.where(OutboxMessage.status == status)
    for name in ("event_type", "instance_id"):
        if request.args.get(name):
            stmt = stmt.where(getattr(OutboxMessage, name) == request.args[name])
    with runtime().uow(write=False) as uow:
        rows = uow.session.scalars(stmt.offset((page - 1) * size).limit(size))
        return {
            "items": [
                {
                    "id": row.id,
                    "idempotency_key": row.idempotency_key,
                    "event_type": row.event_type,
                    "instance_id": row.instance_id,
                    "status": row.status,
                    "attempts": row.attempts,
                    "next_attempt_at": row.next_attempt_at.isoformat(),
                    "last_error": row.last_error,
                    "created_at": row.created_at.isoformat(),
                    "sent_at": row.sent_at.isoformat() if row.sent_at else None,
                    "payload": row.payload,
                }
                for row in rows
            ],
            "page": page,
        }
