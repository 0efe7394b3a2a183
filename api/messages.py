"""ERP events: correlate a message to the instance waiting for it, or buffer it (DESIGN §2)."""

from __future__ import annotations

from flask import Blueprint

from api.requests import actor, field, json_body, refused, runtime, text_field
from engine.runtime import commands

bp = Blueprint("messages", __name__, url_prefix="/api/v1/messages")

# The width of the name, key and id columns a message is matched and buffered by.
MAX_TEXT = 200


@bp.post("")
def send_message():
    body = json_body()
    name = text_field(body, "name", MAX_TEXT)
    correlation_key = text_field(body, "correlation_key", MAX_TEXT, required=False)
    payload = field(body, "payload", dict, required=False, default={})
    message_id = text_field(body, "message_id", MAX_TEXT, required=False)
    if message_id is not None and not message_id.strip():
        # A blank id was kept as a real key: the next message with a blank id, about
        # anything, got 409 "already used with a different request".
        raise refused("message_id", "must not be blank; leave it out for no id")
    result = commands.deliver_message(
        runtime(), name, correlation_key, payload, message_id, actor()
    )
    return result.body, result.status_code
