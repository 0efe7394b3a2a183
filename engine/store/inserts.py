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
from engine.store.uow import reserve_ids

_INSERTS: dict[tuple[Any, bool], Any] = {}


def _insert(table: Any, returning: bool) -> Any:
    statement = _INSERTS.get((table, returning))
    if statement is None:
        statement = insert(table)
        if returning:
            # PostgreSQL hands back the sequence's ids in the order of the rows.
            statement = statement.returning(table.c.id, sort_by_parameter_order=True)
        _INSERTS[(table, returning)] = statement
    return statement


def insert_loaded(session: Session, rows: Sequence[Any]) -> None:
    """INSERT `rows`, new objects of one mapped class with every column set, in one statement.

    Rows of a table with a generated `id` that have none get theirs at once: reserved under
    SQLite's write lock, or returned by PostgreSQL's sequence.
    """
    if not rows:
        return
    model = type(rows[0])
    table = model.__table__
    names = [column.key for column in table.columns]
    values = [{name: getattr(row, name) for name in names} for row in rows]
    connection = session.connection()
    generated = "id" in table.c and table.c.id.autoincrement is True and values[0]["id"] is None
    first = reserve_ids(session, model, len(rows)) if generated else None
    if generated and first is None:  # PostgreSQL: the sequence's ids, in the rows' order
        for columns in values:
            del columns["id"]
        ids = connection.execute(_insert(table, True), values).scalars().all()
        for row_id, columns in zip(ids, values, strict=True):
            columns["id"] = row_id
    else:
        if first is not None:  # SQLite: the ids reserved under its write lock
            for row_id, columns in enumerate(values, start=first):
                columns["id"] = row_id
        connection.execute(_insert(table, False), values)
    for row, columns in zip(rows, values, strict=True):
        # Every column set, so that none is left expired (each would be read back on first
        # use), then persistent with no pending history.
        for name, value in columns.items():
            setattr(row, name, value)
        make_transient_to_detached(row)
        session.add(row)
        note_created(session, row)
