"""On SQLite, flowgate's writer lock alone queues writers: SQLite never has to answer "busy".

The lock is handed on only once the previous writer's COMMIT (or ROLLBACK) has run. Handed on
before, as SQLAlchemy's commit event would, the next BEGIN IMMEDIATE met a transaction still
committing, and SQLite's busy handler slept a millisecond or more on every contended hand-over.
With the busy timeout at zero, such a collision is an error these tests would see.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

from engine.store.db import WRITE, make_engine

THREADS = 4
WRITES_EACH = 150
INSERT = text("INSERT INTO posting VALUES (:w, :n)")


@pytest.fixture
def impatient_engine(tmp_path: Path) -> Engine:
    """A file database whose connections give up at once when SQLite reports a lock."""
    engine = make_engine(f"sqlite:///{tmp_path / 'writers.db'}")

    @event.listens_for(engine, "connect")
    def _no_waiting(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.execute("PRAGMA busy_timeout=0")

    with engine.connect().execution_options(**{WRITE: True}) as connection, connection.begin():
        connection.execute(text("CREATE TABLE posting (writer INTEGER, n INTEGER)"))
    return engine


def _hammer(engine: Engine, writer: int, fail_every: int, errors: list[BaseException]) -> None:
    try:
        for n in range(WRITES_EACH):
            with engine.connect().execution_options(**{WRITE: True}) as connection:
                transaction = connection.begin()
                connection.execute(INSERT, {"w": writer, "n": n})
                if fail_every and n % fail_every == 0:
                    transaction.rollback()
                else:
                    transaction.commit()
    except BaseException as error:  # collected for the test thread to report
        errors.append(error)


def _run_writers(engine: Engine, fail_every: int) -> list[BaseException]:
    errors: list[BaseException] = []
    threads = [
        threading.Thread(target=_hammer, args=(engine, w, fail_every, errors))
        for w in range(THREADS)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


def test_concurrent_writers_never_meet_a_busy_database(impatient_engine: Engine) -> None:
    errors = _run_writers(impatient_engine, fail_every=0)

    assert errors == []
    with impatient_engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM posting")).scalar_one()
    assert count == THREADS * WRITES_EACH


def test_a_rolled_back_writer_hands_the_lock_on_once_its_rollback_has_run(
    impatient_engine: Engine,
) -> None:
    errors = _run_writers(impatient_engine, fail_every=3)

    assert errors == []
    with impatient_engine.connect() as connection:
        count = connection.execute(text("SELECT count(*) FROM posting")).scalar_one()
    assert count == THREADS * (WRITES_EACH - len(range(0, WRITES_EACH, 3)))
