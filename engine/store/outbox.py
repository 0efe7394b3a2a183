"""Writing outbox rows a command queued: plain inserts, one statement per save.

Rows were ORM objects flushed wherever a query happened to autoflush, so one command could
send three single-row INSERTs (a round trip each on PostgreSQL). Nothing reads them back in
the command that queues them; the dispatcher (engine/scheduler.py) loads them after commit.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.store.tables import OutboxMessage

_INSERT = insert(OutboxMessage.__table__)


def outbox_row(
    idempotency_key: str,
    event_type: str,
    instance_id: str | None,
    payload: dict[str, Any],
    now: datetime,
) -> dict[str, Any]:
    """One pending outbox row, due at once; `payload` is plain JSON already."""
    return {
        "idempotency_key": idempotency_key,
        "event_type": event_type,
        "instance_id": instance_id,
        "payload": payload,
        "status": "pending",
        "attempts": 0,
        "next_attempt_at": now,
        "last_error": None,
        "created_at": now,
        "sent_at": None,
    }


def append_outbox(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` in the session's transaction, in the order they were queued."""
    if rows:
        session.connection().execute(_INSERT, rows)
