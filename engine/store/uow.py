"""Unit of work: one database transaction per engine command (DESIGN §2).

Leaving the `with` block without `commit()` rolls everything back, as in Cosmic Python.
"""

from __future__ import annotations

import weakref
from functools import cache
from types import TracebackType
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.orm import Session, sessionmaker

from engine.store.audit import AuditedSession
from engine.store.db import WRITE, is_sqlite

_PINNED = "flowgate_pinned"


@event.listens_for(AuditedSession, "loaded_as_persistent")
@event.listens_for(AuditedSession, "pending_to_persistent")
def _pin(session: Session, instance: Any) -> None:
    """Keep every row a unit of work has seen until it ends.

    The session's identity map holds rows weakly, so a row a service handler loaded and let go
    of was collected, and the next handler's `session.get` of the same order or customer went
    back to the database: 13 reads of one sales order per order-to-cash instance. A unit of
    work is one command, so holding its rows costs no more memory than the command already
    used.
    """
    session.info.setdefault(_PINNED, []).append(instance)


# Built once per engine and mode: `execution_options` and `sessionmaker` each set up a new
# event dispatcher, which cost about a millisecond per command when done per unit of work.
_FACTORIES: weakref.WeakKeyDictionary[Engine, dict[bool, sessionmaker[Session]]] = (
    weakref.WeakKeyDictionary()
)


def _session_factory(engine: Engine, write: bool) -> sessionmaker[Session]:
    by_mode = _FACTORIES.setdefault(engine, {})
    factory = by_mode.get(write)
    if factory is None:
        bind = engine.execution_options(**{WRITE: write}) if is_sqlite(engine) else engine
        # AuditedSession appends the audit trail in the same transaction (engine/store/audit.py).
        factory = by_mode[write] = sessionmaker(
            bind=bind, class_=AuditedSession, expire_on_commit=False, autoflush=True
        )
    return factory


@cache
def _last_id(model: type) -> str:
    # Sent straight to the driver: the one read every command makes per table it appends to,
    # with nothing for SQLAlchemy to compile, bind or type.
    return f"SELECT max(id) FROM {model.__table__.name}"  # type: ignore[attr-defined]


def reserve_ids(session: Session, model: type, count: int = 1) -> int | None:
    """The first of `count` ids for new `model` rows on SQLite; None on PostgreSQL.

    SQLite cannot return the keys of a multi-row INSERT in order, so the ORM inserts rows
    without an id one statement at a time, and a caller that needs an id at once had to flush
    for it. A write unit of work holds SQLite's only write lock from its first statement, so
    ids past both the table's max and what this session reserved already are free until it
    commits. PostgreSQL batches with RETURNING and must keep its sequence.
    """
    if not is_sqlite(session.get_bind()):
        return None
    if any(isinstance(row, model) and row.id is None for row in session.new):  # type: ignore[attr-defined]
        session.flush()  # rows queued without an id take theirs first
    key = f"flowgate_next_id:{model.__name__}"
    driver = session.connection().connection.driver_connection
    last = driver.execute(_last_id(model)).fetchone()[0] or 0
    first = max(last + 1, session.info.get(key, 0))
    session.info[key] = first + count
    return first


class UnitOfWork:
    def __init__(self, engine: Engine, write: bool = True) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)
        self._factory = _session_factory(engine, write)
        self.session: Session
        self.after_commit: list[Any] = []

    def __enter__(self) -> UnitOfWork:
        self.session = self._factory()
        self.after_commit = []
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            self.session.rollback()
        finally:
            self.session.info.pop(_PINNED, None)
            self.session.close()

    def commit(self) -> None:
        self.session.commit()
        callbacks, self.after_commit = self.after_commit, []
        for callback in callbacks:
            callback()

    def rollback(self) -> None:
        self.session.rollback()

    def for_update(self, statement: Any, skip_locked: bool = False) -> Any:
        """Row lock on PostgreSQL; SQLite already holds the database write lock."""
        if self.sqlite:
            return statement
        return statement.with_for_update(skip_locked=skip_locked)


class UnitOfWorkFactory:
    """Hands out units of work bound to one engine; the composition root owns it."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.sqlite = is_sqlite(engine)

    def __call__(self, write: bool = True) -> UnitOfWork:
        return UnitOfWork(self.engine, write=write)
