"""The outbox events flowgate sends, by name: what a webhook may subscribe to (DESIGN §4).

The handlers name their events where they emit them; this list is checked against those calls
(tests/unit/test_event_types.py), so it cannot fall behind. A model may send others of its own
through the built-in `outbox.publish` task (`published_event`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

# A subscription to every event (engine/scheduler.py delivers by it).
WILDCARD = "*"
PUBLISH_TOPIC = "outbox.publish"

ENGINE_EVENTS = frozenset(
    {
        # Order to cash (engine/handlers/o2c.py, engine/rescore.py)
        "customer.downgraded",
        "customer.risk_reviewed",
        "dunning.level_changed",
        "invoice.posted",
        "order.cancelled",
        "order.credit_held",
        "order.rejected",
        "order.released",
        "shipment.requested",
        # Procure to pay (engine/handlers/p2p.py)
        "approval.escalated",
        "approval.owner_notified",
        "approval.reminded",
        "invoice.blocked",
        "invoice.credit_note_requested",
        "invoice.rejected",
        "invoice.released",
        "lot.quarantined",
        "lot.rejected",
        "lot.released",
        "lot.returned",
        "payment.requested",
        "po.closed",
        "po.issued",
        "requisition.approved",
        "requisition.rejected",
        # Both (engine/handlers/postings.py)
        "journal.posted",
        # Messages handed back to the ERP (engine/scheduler.py, engine/runtime/commands.py)
        "message.expired",
        "message.refused",
        # The inbox (engine/runtime/, engine/escalation.py)
        "task.assigned",
        "task.completed",
        "task.created",
        "task.escalated",
    }
)


def published_event(element_id: str, properties: Mapping[str, str]) -> str:
    """What an `outbox.publish` task sends: its `event` property, else its element id."""
    return properties.get("event") or element_id


def model_events(elements: Mapping[str, Mapping[str, Any]]) -> set[str]:
    """The events a deployed model's `outbox.publish` tasks send."""
    return {
        published_event(element_id, info.get("properties", {}))
        for element_id, info in elements.items()
        if info.get("topic") == PUBLISH_TOPIC
    }


def unknown_events(names: Iterable[str], deployed: Iterable[Mapping[str, Any]]) -> list[int]:
    """The positions in `names` of events neither the engine nor a deployed model sends."""
    known = set(ENGINE_EVENTS) | {WILDCARD}
    for elements in deployed:
        known |= model_events(elements)
    return [index for index, name in enumerate(names) if name not in known]
