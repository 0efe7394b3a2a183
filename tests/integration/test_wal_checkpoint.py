"""SQLite's write-ahead log is copied into the database by the scheduler, not by commands.

A command that crossed SQLite's default of 1,000 log pages copied the whole log while it held
the only write lock, and every command queued behind it waited. On PostgreSQL there is no such
log to copy, and checkpoint() does nothing.
"""

from __future__ import annotations

import time
from pathlib import Path

from api.bootstrap import Container
from engine.runtime import commands
from engine.store.db import AUTOCHECKPOINT_PAGES, checkpoint, is_sqlite
from tests.integration.conftest import ERP, deploy_approval, sqlite_container

ORDER = {"amount": 5000, "approval_timeout": "P3D"}


def test_commands_leave_the_log_for_checkpoint_to_copy_whole(
    tmp_path: Path, approval_bpmn: bytes
) -> None:
    with sqlite_container(tmp_path) as container:
        deploy_approval(container, approval_bpmn)
        checkpoint(container.engine)
        for n in range(120):
            commands.start(container.runtime, "approval", f"SO-{n}", ORDER, ERP)
        frames, copied = checkpoint(container.engine)
        # Past SQLite's default threshold: had a command copied the log, it would have restarted.
        assert 1_000 < frames < AUTOCHECKPOINT_PAGES
        assert copied == frames


def test_the_scheduler_copies_the_log_every_tick(tmp_path: Path, approval_bpmn: bytes) -> None:
    database = tmp_path / "flowgate.db"
    with sqlite_container(tmp_path, tick_seconds=0.2) as container:
        deploy_approval(container, approval_bpmn)
        checkpoint(container.engine)
        for n in range(40):
            commands.start(container.runtime, "approval", f"SO-{n}", ORDER, ERP)
        # The new rows are in the log alone until a checkpoint copies them into the file.
        before = database.stat().st_size
        container.start_scheduler()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and database.stat().st_size == before:
            time.sleep(0.05)
        assert database.stat().st_size > before


def test_checkpoint_does_nothing_on_postgresql(container: Container) -> None:
    # `container` runs on SQLite and PostgreSQL; only the SQLite one has a log to copy.
    result = checkpoint(container.engine)
    assert (result is None) != is_sqlite(container.engine)
