"""Approver delegation for a date range (issue 5): `POST /users/{id}/delegations
{delegate, from, to}`. A thin form of `POST /delegations` (issue 6) for the approver named in the
path; the delegate inherits the approver's tasks in the window, and segregation of duties still
applies to them (`engine/handlers/p2p.sod_guard`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint

from api.errors import BadRequest
from api.requests import actor, day_or_instant, field, json_body, runtime
from api.tasks import delegation_view
from engine.runtime import inbox

bp = Blueprint("users", __name__, url_prefix="/api/v1/users")


def _bound(body: dict[str, Any], name: str, end: bool) -> datetime:
    """An ISO datetime with a zone, or a date: `from` starts that day, `to` includes it (UTC)."""
    value = day_or_instant(field(body, name, str), end)
    if value is None:
        message = "must be an ISO date or an ISO datetime with a time zone"
        raise BadRequest(f"'{name}' {message}", [{"field": name, "message": message}])
    return value


@bp.post("/<user_id>/delegations")
def create_user_delegation(user_id: str):
    body = json_body()
    grant = inbox.add_delegation(
        runtime(),
        actor(),
        field(body, "delegate", str),
        _bound(body, "from", end=False),
        _bound(body, "to", end=True),
        delegator=user_id,
        process_key=field(body, "process_key", str, required=False),
        reason=field(body, "reason", str, required=False),
    )
    return delegation_view(grant), 201
