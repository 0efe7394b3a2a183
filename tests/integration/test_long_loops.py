"""An instance that has looped hundreds of times still advances (SpiffWorkflow's walk depth)."""

from __future__ import annotations

from pathlib import Path

from engine.definitions.compile import SourceFile
from engine.runtime import commands
from tests.integration.conftest import CAROL, ERP

ROUNDS = (Path(__file__).resolve().parents[1] / "fixtures" / "rounds.bpmn").read_bytes()


def test_an_instance_that_looped_600_times_reaches_its_next_task_and_completes(container):
    rt = container.runtime
    with rt.uow() as uow:
        rt.catalog.deploy(uow, [SourceFile("rounds.bpmn", ROUNDS)], "test")
        uow.commit()

    # Each round adds two levels to the task tree: 600 rounds go past 1,000.
    started = commands.start(rt, "rounds", "LOOP-600", {"done": 0, "rounds": 600}, ERP).body

    assert started["status"] == "running"
    [review] = started["active_tasks"]
    assert review["element_id"] == "review"
    done = commands.complete_task(rt, review["id"], {}, CAROL).body
    assert done["status"] == "completed"
