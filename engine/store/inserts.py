"""New rows written with one plain INSERT per table, not a unit-of-work flush.

A flush costs a set-up, a dependency sort, per-object attribute bookkeeping and an audit pass
over the session, for rows whose every column a command already knows. The rows below go in as
one (multi-row) statement; the objects then become persistent as if just loaded, so later reads
in the command find them in the identity map and the flush never sees them; and the audit chain
gets the same `*_created` link a flushed insert gets.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session, make_transient_to_detached

from engine.store.audit import note_created

_INSERTS: dict[Any, Any] = {}


def insert_loaded(session: Session, rows: Sequence[Any]) -> None:
    """INSERT `rows`, new objects of one mapped class with every column set, in one statement."""
    if not rows:
        return
    table = type(rows[0]).__table__
    statement = _INSERTS.get(table)
    if statement is None:
        statement = _INSERTS[table] = insert(table)
    names = [column.key for column in table.columns]
    values = [{name: getattr(row, name) for name in names} for row in rows]
    session.connection().execute(statement, values)
    for row, columns in zip(rows, values, strict=True):
        # Every column set, so that none is left expired (each would be read back on first
        # use), then persistent with no pending history.
        for name, value in columns.items():
            setattr(row, name, value)
        make_transient_to_detached(row)
        session.add(row)
        note_created(session, row)
