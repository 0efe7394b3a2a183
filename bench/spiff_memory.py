"""The baseline: the same models run by plain in-memory SpiffWorkflow, no store, no HTTP."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import CamundaTaskParser
from SpiffWorkflow.util.task import TaskState

from bench.measure import Throughput


class NoOpServiceTask(ServiceTask):
    """A service task that does nothing and completes; Spiff's own default waits forever."""

    def _run_hook(self, task: Any) -> bool:
        return True


class PlainParser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (CamundaTaskParser, NoOpServiceTask),
    }


def parse(path: Path, process_id: str) -> tuple[Any, dict[str, Any]]:
    parser = PlainParser()
    parser.add_bpmn_file(str(path))
    return parser.get_spec(process_id), parser.get_subprocess_specs(process_id)


def _timed(count: int, one: Callable[[], None]) -> Throughput:
    latencies = []
    started = time.perf_counter()
    for _ in range(count):
        begun = time.perf_counter()
        one()
        latencies.append(time.perf_counter() - begun)
    return Throughput(count, time.perf_counter() - started, latencies)


def _run_to_end(workflow: BpmnWorkflow, process_id: str) -> None:
    workflow.do_engine_steps()
    if not workflow.completed:
        raise RuntimeError(f"{process_id} did not complete in memory")


def run_straight_through(path: Path, process_id: str, count: int) -> Throughput:
    """W1: start, run every step to the end."""
    spec, subprocess_specs = parse(path, process_id)
    return _timed(count, lambda: _run_to_end(BpmnWorkflow(spec, subprocess_specs), process_id))


def run_with_user_task(path: Path, process_id: str, count: int) -> Throughput:
    """W2: start, run to the user task, complete it, run to the end."""
    spec, subprocess_specs = parse(path, process_id)

    def one() -> None:
        workflow = BpmnWorkflow(spec, subprocess_specs)
        workflow.do_engine_steps()
        (task,) = workflow.get_tasks(state=TaskState.READY, manual=True)
        task.run()
        _run_to_end(workflow, process_id)

    return _timed(count, one)
