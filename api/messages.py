"""ERP events: correlate a message to the instance waiting for it, or buffer it (DESIGN §2)."""

from __future__ import annotations

from flask import Blueprint

from api.requests import actor, field, json_body, runtime
from engine.runtime import commands

bp = Blueprint("messages", __name__, url_prefix="/api/v1/messages")


@bp.post("")
def send_message():
    body = json_body()
    name = field(body, "name", str)
    correlation_key = field(body, "correlation_key", str, required=False)
    payload = field(body, "payload", dict, required=False, default={})
    message_id = field(body, "message_id", str, required=False)
    result = commands.deliver_message(
        runtime(), name, correlation_key, payload, message_id, actor()
    )
    return result.body, result.status_code
