"""Writing an instance's row: one plain INSERT or UPDATE per save, not a unit-of-work flush.

Every command ends by writing its instance (state blob, variables, status). As an ORM change
that meant a flush set-up, a dependency sort, an UPDATE built from attribute history and an
audit pass over it: about a fifth of a plain start. The columns a save writes are known, so
they go in as one statement; the row object is brought up to date without history, and the
audit chain is given the same link the flush hook would have made.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import bindparam, update
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value
from sqlalchemy.orm.exc import StaleDataError

from engine.store.audit import note_changed
from engine.store.inserts import insert_loaded
from engine.store.tables import Instance

_TABLE = Instance.__table__


def _update(names: tuple[str, ...]) -> Any:
    # Guarded by the version the command loaded, as the ORM's version_id_col check was.
    return (
        update(_TABLE)
        .where(_TABLE.c.id == bindparam("_id"), _TABLE.c.lock_version == bindparam("_version"))
        .values({name: bindparam(name) for name in (*names, "lock_version")})
    )


# One statement per set of columns a save writes (there are only a few), built once.
_UPDATES: dict[tuple[str, ...], Any] = {}


def save_instance(session: Session, instance: Instance, values: dict[str, Any]) -> None:
    """Write `values` to the instance's row: INSERT the first time (the row object has not
    been added to the session), else UPDATE under its optimistic lock."""
    if instance not in session:
        for name, value in values.items():
            setattr(instance, name, value)
        instance.lock_version = instance.lock_version or 1
        insert_loaded(session, [instance])
        return
    names = tuple(sorted(values))
    statement = _UPDATES.get(names)
    if statement is None:
        statement = _UPDATES[names] = _update(names)
    version = instance.lock_version
    params = {**values, "lock_version": version + 1, "_id": instance.id, "_version": version}
    if session.connection().execute(statement, params).rowcount != 1:
        raise StaleDataError(f"instance {instance.id} was changed by another command")
    before = {name: getattr(instance, name) for name in values}
    for name, value in values.items():
        set_committed_value(instance, name, value)
    set_committed_value(instance, "lock_version", version + 1)
    note_changed(session, instance, before, values)
