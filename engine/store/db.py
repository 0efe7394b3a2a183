"""Database engines: SQLite (embedded, WAL) and PostgreSQL (production)."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

WRITE = "flowgate_write"


def make_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine; on SQLite, writers take the lock up front with BEGIN IMMEDIATE.

    pysqlite's own transaction handling starts a deferred transaction that upgrades to a write
    lock on first write, which fails with "database is locked" under concurrent commands. Taking
    the write lock at BEGIN serialises commands instead, and busy_timeout makes them queue.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, **kwargs)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False}, **kwargs)

    @event.listens_for(engine, "connect")
    def _configure(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA busy_timeout=30000")
        cursor.close()

    # SQLite admits one writer. Writers of this process queue on a lock first: SQLite's own
    # busy handler polls with growing sleeps, which turned four busy threads into a p99 of half
    # a second; a lock hands over the moment the writer before commits. Other processes
    # (a separate `flowgate worker`) still meet at BEGIN IMMEDIATE and busy_timeout.
    writer = threading.RLock()

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        if write:
            writer.acquire()
            connection.info["flowgate_writer"] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            _release(connection)
            raise

    def _release(connection: Any) -> None:
        if connection.info.pop("flowgate_writer", False):
            writer.release()

    event.listen(engine, "commit", _release)
    event.listen(engine, "rollback", _release)

    return engine


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
