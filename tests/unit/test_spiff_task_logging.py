"""SpiffWorkflow's per-task state log is skipped while its logger is off, and kept when on."""

from __future__ import annotations

import logging

import pytest
from SpiffWorkflow.util.task import TaskState

from tests.unit.test_workflow_pruning import _looped

SPIFF_TASK = "spiff.task"


@pytest.fixture
def spiff_task_level():
    logger = logging.getLogger(SPIFF_TASK)
    before = logger.level
    yield logger.setLevel
    logger.setLevel(before)


def test_state_changes_are_logged_as_spiffworkflow_logs_them_when_its_logger_is_on(
    spiff_task_level, caplog
):
    spiff_task_level(logging.INFO)
    with caplog.at_level(logging.INFO, logger=SPIFF_TASK):
        _looped(3)

    changes = [r for r in caplog.records if r.name == SPIFF_TASK]
    assert any(r.getMessage() == "State changed to COMPLETED" for r in changes)
    assert {r.task_spec for r in changes} >= {"prepare", "round"}


def test_with_the_logger_off_nothing_is_logged_and_the_workflow_runs_the_same(
    spiff_task_level, caplog
):
    spiff_task_level(logging.WARNING)
    with caplog.at_level(logging.DEBUG):
        workflow, _ = _looped(3)

    assert [r for r in caplog.records if r.name == SPIFF_TASK] == []
    rounds = [t for t in workflow.tasks.values() if t.task_spec.name == "round"]
    assert [t.data["done"] for t in rounds] == [1, 2, 3]
    assert all(t.state == TaskState.COMPLETED for t in rounds)
    assert all(t.last_state_change > 0 for t in rounds)
