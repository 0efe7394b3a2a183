"""Database engines: SQLite (embedded, WAL) and PostgreSQL (production)."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

WRITE = "flowgate_write"

# WAL pages after which a committing writer copies the log into the database file itself.
# SQLite's default, 1,000, made every fiftieth or so command do that copy (and its fsync)
# while holding the only write lock: commits averaged 0.6 ms instead of 0.25. The scheduler
# checkpoints every tick instead (checkpoint() below); this is the backstop without one.
AUTOCHECKPOINT_PAGES = 20_000


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
        cursor.execute(f"PRAGMA wal_autocheckpoint={AUTOCHECKPOINT_PAGES}")
        cursor.close()

    writer = _writer_lock(parsed.database)

    @event.listens_for(engine, "begin")
    def _begin(connection: Any) -> None:
        write = connection.get_execution_options().get(WRITE, False)
        if write:
            writer.acquire()
            connection.info["flowgate_writer"] = True
        try:
            connection.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")
        except BaseException:
            _release_writer(connection, writer)
            raise

    _release_after(engine, writer)
    return engine


def _release_writer(connection: Any, writer: _WriterLock) -> None:
    """Release `writer` if `connection` (a Connection or the pool's proxy) holds it."""
    try:
        info = connection.info
    except NotImplementedError:  # the pool's ad-hoc proxy while it connects: never a writer
        return
    if info.pop("flowgate_writer", False):
        writer.release()


def _release_after(engine: Engine, writer: _WriterLock) -> None:
    """Hand the writer lock on once SQLite's COMMIT or ROLLBACK has run, not before.

    SQLAlchemy's `commit` and `rollback` connection events fire before the DBAPI call. Releasing
    there let the next writer's BEGIN IMMEDIATE meet a transaction still committing; SQLite's
    busy handler then slept a millisecond or more before trying again, on every contended
    hand-over. So the release wraps the dialect's own commit and rollback (each engine has its
    own dialect); the pool's reset-on-return rolls back through the same path.
    """
    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_connection: Any) -> None:
        try:
            commit(dbapi_connection)
        finally:
            _release_writer(dbapi_connection, writer)

    def do_rollback(dbapi_connection: Any) -> None:
        try:
            rollback(dbapi_connection)
        finally:
            _release_writer(dbapi_connection, writer)

    dialect.do_commit = do_commit  # type: ignore[method-assign]
    dialect.do_rollback = do_rollback  # type: ignore[method-assign]


class _WriterLock:
    """SQLite admits one writer: writers queue here before BEGIN IMMEDIATE.

    SQLite's own busy handler polls with growing sleeps, which turned four busy threads into a
    p99 of half a second. Threads of one process queue on an RLock; processes (gunicorn
    workers, `flowgate worker`, the CLI) then queue on an advisory `flock` on a file beside the
    database. Both hand over the moment the writer before commits. The flock is taken only on
    the outermost acquire, because a second LOCK_EX on the same descriptor would not block and
    an inner release would drop it early.
    """

    def __init__(self, database: str | None) -> None:
        self._threads = threading.RLock()
        self._depth = 0
        self._path = f"{database}.writer-lock" if database and database != ":memory:" else None
        self._fd: int | None = None
        self._pid = 0

    def _descriptor(self) -> int | None:
        if self._path is None:
            return None
        # A forked child must not share its parent's open file description, or the two
        # processes would hold the same lock at once.
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        return self._fd

    def acquire(self) -> None:
        self._threads.acquire()
        if self._depth == 0:
            try:
                fd = self._descriptor()
                if fd is not None:
                    fcntl.flock(fd, fcntl.LOCK_EX)
            except BaseException:
                self._threads.release()
                raise
        self._depth += 1

    def release(self) -> None:
        self._depth -= 1
        try:
            if self._depth == 0 and self._fd is not None:
                fcntl.flock(self._fd, fcntl.LOCK_UN)
        finally:
            self._threads.release()


_WRITER_LOCKS: dict[str, _WriterLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _writer_lock(database: str | None) -> _WriterLock:
    """One lock (and one descriptor) per database file per process, shared by its engines."""
    key = os.path.realpath(database) if database and database != ":memory:" else ""
    if not key:
        return _WriterLock(None)
    with _WRITER_LOCKS_GUARD:
        lock = _WRITER_LOCKS.get(key)
        if lock is None:
            lock = _WRITER_LOCKS[key] = _WriterLock(key)
        return lock


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"


def checkpoint(engine: Engine) -> tuple[int, int] | None:
    """Copy SQLite's write-ahead log into the database file, beside the commands, not in them.

    PASSIVE takes no lock a command waits for, and the copy runs in SQLite's C code, which lets
    go of the GIL. Returns (frames in the log, frames copied); None on PostgreSQL.
    """
    if not is_sqlite(engine):
        return None
    raw = engine.raw_connection()
    try:
        # The bare connection is in autocommit: inside a transaction the checkpoint cannot run.
        _busy, frames, copied = raw.driver_connection.execute(
            "PRAGMA wal_checkpoint(PASSIVE)"
        ).fetchone()
    finally:
        raw.close()
    return frames, copied
