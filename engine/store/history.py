"""Writing an instance's history rows: plain inserts, not ORM objects.

A command records a row for every element it runs (dozens on a straight-through order), and
each was an ORM object: built with attribute events, tracked, sorted and flushed, then read
back by the audit hook. They are never changed after they are written, so they go in as
mappings in one executemany, and the audit chain is told of them directly.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from engine.store.audit import note_history
from engine.store.tables import InstanceEvent
from engine.store.uow import reserve_ids

_TABLE = InstanceEvent.__table__
_INSERT = insert(_TABLE)
# PostgreSQL hands back the new ids in the order of the rows (one INSERT … RETURNING).
_INSERT_RETURNING = insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)


def append_history(session: Session, rows: list[dict[str, Any]]) -> None:
    """Insert `rows` (instance_id, at, type, element_id, actor, details), giving each its id,
    in the session's transaction; their audit links join the chain at commit."""
    if not rows:
        return
    connection = session.connection()
    first = reserve_ids(session, InstanceEvent, len(rows))
    if first is not None:
        for row_id, row in enumerate(rows, start=first):
            row["id"] = row_id
        connection.execute(_INSERT, rows)
    else:
        ids = connection.execute(_INSERT_RETURNING, rows).scalars().all()
        for row_id, row in zip(ids, rows, strict=True):
            row["id"] = row_id
    note_history(session, rows)
