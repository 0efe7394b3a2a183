"""Webhook subscriptions for outbox events, signed with HMAC-SHA256 (DESIGN §4)."""

from __future__ import annotations

from urllib.parse import urlparse

from flask import Blueprint
from sqlalchemy import select

from api.errors import BadRequest
from api.requests import field, has_control_character, json_body, refused, runtime, text_field
from engine.errors import ValidationFailed
from engine.events import unknown_events
from engine.store.tables import Definition, Webhook
from engine.webhook_targets import reaches_metadata

bp = Blueprint("webhooks", __name__, url_prefix="/api/v1/webhooks")

# The widths of webhook.url and webhook.secret.
MAX_URL = 2000
MAX_SECRET = 200


@bp.post("")
def create_webhook():
    body = json_body()
    url = field(body, "url", str)
    events = field(body, "events", list)
    secret = field(body, "secret", str)
    try:
        parsed = urlparse(url)
        port = parsed.port  # reading it checks the port; the parse alone does not
    except ValueError:  # an unclosed IPv6 bracket, a port that is no number
        parsed, port = None, None
    if (
        parsed is None
        or parsed.scheme not in {"http", "https"}
        or not parsed.hostname
        # urlparse keeps what no HTTP client can connect to: `http://a b.com/`, port 0.
        or has_control_character(url)
        or any(c.isspace() for c in url)
        or port == 0
    ):
        raise BadRequest("url must be an http(s) URL", [{"field": "url", "message": "not http(s)"}])
    text_field(body, "url", MAX_URL)
    if reaches_metadata(parsed.hostname or ""):
        raise refused("url", "must not be a link-local or cloud metadata address")
    if not events or not all(isinstance(e, str) for e in events):
        raise BadRequest(
            "events must be a non-empty list of event names",
            [{"field": "events", "message": "must list event names"}],
        )
    if len(secret) < 16:
        raise BadRequest(
            "secret must be at least 16 characters", [{"field": "secret", "message": "too short"}]
        )
    text_field(body, "secret", MAX_SECRET)
    with runtime().uow() as uow:
        unknown = unknown_events(events, uow.session.scalars(select(Definition.elements)))
        if unknown:
            message = "is not an event flowgate or a deployed model sends"
            raise ValidationFailed(
                f"{len(unknown)} event name(s) unknown",
                [{"field": f"events[{i}]", "message": message} for i in unknown],
            )
        hook = Webhook(url=url, events=events, secret=secret)
        uow.session.add(hook)
        uow.commit()
        return {"id": hook.id, "url": hook.url, "events": hook.events}, 201


@bp.get("")
def list_webhooks():
    with runtime().uow(write=False) as uow:
        hooks = uow.session.execute(select(Webhook).order_by(Webhook.id)).scalars()
        return {
            "items": [
                {"id": h.id, "url": h.url, "events": h.events, "active": h.active} for h in hooks
            ]
        }
