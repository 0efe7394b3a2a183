"""The BpmnWorkflow every flowgate instance runs as: SpiffWorkflow's, with a cheaper task query.

SpiffWorkflow finds the READY tasks of every engine step (and the active tasks of every
projection) by walking the whole task tree from its root, finished branches included. The walk
costs a Python iterator step and a UUID hash per task ever created, so each step of an order
grows with the order's history: every dunning round or re-check leaves more finished tasks to
step over. The workflow already holds its tasks in a flat dict, so a query for tasks in a live
state scans that dict instead and puts the matches in the order the walk would have returned
them (bench/bench_history.py: 37-45x faster at 20-200 finished tasks). Where that order
cannot be read off the tree cheaply (a match inside a subprocess, an ancestor the walk would not
descend into), the query falls back to SpiffWorkflow's own walk, so the answer is always the one
the walk gives. SpiffWorkflow's own walks, wherever it makes them, no longer stop 1,000 levels
down (`_lift_walk_depth_limit`), and starting an event subprocess no longer rewires the spec
every instance of the definition shares (`_trigger_without_rewiring`).
"""

from __future__ import annotations

import inspect
import itertools
import logging
import sys
import time
from typing import Any

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.bpmn.specs.control import BpmnStartTask
from SpiffWorkflow.bpmn.util.task import BpmnTaskIterator
from SpiffWorkflow.task import Task
from SpiffWorkflow.util.task import TaskIterator, TaskState


def _lift_walk_depth_limit() -> None:
    """SpiffWorkflow's walks stop 1,000 levels down (TaskIterator's `max_depth` default), and
    every round of a loop deepens the tree: past that, an instance's next task was invisible
    and `is_completed()` said True, so a long-looping instance (a payment rechecked daily for
    months) was closed as completed without having run its last steps. A task tree has no
    cycles to guard against, so the default is lifted for every walk, including those inside
    SpiffWorkflow's own joins, gateways and `cancel`, which no subclass could reach."""
    for iterator in (TaskIterator, BpmnTaskIterator):
        parameters = inspect.signature(iterator.__init__).parameters.values()
        with_defaults = [p.name for p in parameters if p.default is not inspect.Parameter.empty]
        position = with_defaults.index("max_depth")
        defaults = list(iterator.__init__.__defaults__)
        defaults[position] = sys.maxsize
        iterator.__init__.__defaults__ = tuple(defaults)


_lift_walk_depth_limit()


def _trigger_without_rewiring(self: BpmnStartTask, my_task: Task, spec_name: str) -> Any:
    """BpmnStartTask.trigger_wf, minus wiring the event subprocess into the start task.

    SpiffWorkflow starts a message- or error-started event subprocess by connecting it to the
    process's start task for good. Its specs are per instance there; here every instance of a
    definition version shares one parsed spec (engine/definitions/catalog.py), so after the
    first order was cancelled, every order started later ran the cancellation subprocess at its
    start, and a real cancellation then cancelled it with the rest: the order completed with
    nothing reversed. The triggered task is added as SpiffWorkflow adds it; only the links that
    a task existing only once triggered needs (its input, the process end) are shared.
    """
    spec = self._wf_spec.task_specs.get(spec_name)
    if self not in spec.inputs:
        # One way only: the subprocess may name the start task as its input (a task spec with
        # none refuses to run), but the start task's outputs stay what every instance runs.
        spec._connect_notify(self)
        spec.connect(self._wf_spec.end)
    child = my_task._add_child(spec, TaskState.FUTURE)
    child.triggered = True
    child.task_spec._update(child)
    return child.id


BpmnStartTask.trigger_wf = _trigger_without_rewiring

_SPIFF_TASK_LOG = logging.getLogger("spiff.task")
_spiff_set_state = Task._set_state


def _set_state_unlogged(self: Task, value: int) -> None:
    """Task._set_state without its log line when nobody would see it.

    SpiffWorkflow formats a message and builds a dict of details (the task's data included) on
    every state change before `logger.info` finds the level off: about 2 % of an order's time
    under SQLite's write lock. With `spiff.task` at INFO or below, SpiffWorkflow's own method
    runs and logs as before.
    """
    if _SPIFF_TASK_LOG.isEnabledFor(logging.INFO):
        _spiff_set_state(self, value)
    elif value != self._state:
        self.last_state_change = time.time()
        self._state = value


Task._set_state = _set_state_unlogged  # type: ignore[method-assign]


class FlowgateWorkflow(BpmnWorkflow):
    def get_tasks(self, first_task: Task | None = None, **kwargs: Any) -> list[Task]:
        state = kwargs.get("state")
        if first_task is None and kwargs.keys() == {"state"} and _is_live_mask(state):
            found = self._live_tasks(state)
            if found is not None:
                return found
        return super().get_tasks(first_task, **kwargs)

    def update_waiting_tasks(self) -> None:
        # Run after every completed task; most of the time nothing is WAITING, and a walk that
        # starts with no WAITING task can meet none (only updating one changes any state).
        if any(task._state & TaskState.WAITING for task in self.tasks.values()):
            super().update_waiting_tasks()

    def _live_tasks(self, mask: int) -> list[Task] | None:
        """The tasks whose state is in `mask`, in the walk's order; None where only the walk
        can tell that order."""
        for subprocess in self.subprocesses.values():
            if any(task._state & mask for task in subprocess.tasks.values()):
                return None
        matches = [task for task in self.tasks.values() if task._state & mask]
        if len(matches) < 2:
            # The walk reaches every live task: SpiffWorkflow never puts a definite task under
            # a predicted one (TaskIterator's own note), and its depth limit is lifted (above).
            # So a lone match needs no position.
            return matches
        positions = []
        for task in matches:
            position = _tree_position(task)
            if position is None:
                return None
            positions.append((position, task))
        positions.sort(key=lambda pair: pair[0])
        return [task for _, task in positions]


def _is_live_mask(state: Any) -> bool:
    # For these states the walk descends below every FUTURE-or-later task (TaskIterator's
    # min_state); masks with predicted or finished states are left to the walk.
    return isinstance(state, int) and state != 0 and not state & ~TaskState.DEFINITE_MASK


def _tree_position(task: Task) -> tuple[int, ...] | None:
    """The child indexes from the root down to `task`: sorting by them is the depth-first
    order. None under a predicted ancestor, which the walk would not descend below."""
    path: list[int] = []
    child = task
    parent = task.parent
    while parent is not None:
        if parent._state < TaskState.FUTURE:
            return None
        path.append(parent._children.index(child.id))
        child, parent = parent, parent.parent
    path.reverse()
    return tuple(path)


# An instance's own history in its task tree: SpiffWorkflow keeps every finished task, and each
# round of a loop adds its tasks under the last round's, so a payment rechecked daily while
# blocked, or any long-lived loop, made every later load, step and save of that instance
# slower (bench/bench_history.py: 35 ms to load at 2,000 finished tasks). The longest straight
# paths through the shipped models finish 30-60 tasks; past PRUNE_ABOVE, loops have added the
# rest, and only tasks a loop repeats are ever dropped (below).
PRUNE_ABOVE = 120
# Finished tasks kept at the live end of each straight run: every spec a loop round visits is
# among them, so anything SpiffWorkflow reads back from a task's recent ancestors is still there.
KEEP_RECENT = 24


def prune_finished_rounds(workflow: BpmnWorkflow) -> int:
    """Drop earlier loop rounds from the task tree; return how many tasks went.

    Only the middle of a straight run of finished tasks is touched (each completed with one
    child, as a gateway loop leaves them), and only tasks whose spec recurs in the run's
    KEEP_RECENT most recent ones: a one-off step is never dropped, nor a split, a subprocess's
    parent or the last task run. The run is relinked around what goes, so every kept task's
    ancestors are still its ancestors. What happened in the dropped rounds stays in the
    instance's history and decisions, which the task tree never was the record of.
    """
    if len(workflow.tasks) <= PRUNE_ABOVE:
        return 0
    removed = 0
    for owner in (workflow, *workflow.subprocesses.values()):
        for run in _straight_runs(owner, workflow):
            recent = run[-KEEP_RECENT:]
            recurring = {task.task_spec for task in recent}
            kept = [run[0]]
            kept += [t for t in run[1:-KEEP_RECENT] if t.task_spec not in recurring]
            kept += recent
            if len(kept) == len(run):
                continue
            for above, below in itertools.pairwise(kept):
                above._children = [below.id]
                below._parent = above.id
            staying = {task.id for task in kept}
            for task in run:
                if task.id not in staying:
                    del owner.tasks[task.id]
                    removed += 1
    return removed


def _straight_runs(owner: Any, workflow: BpmnWorkflow) -> list[list[Task]]:
    """Maximal chains of finished tasks, each COMPLETED with exactly one child, top down."""

    def linkable(task: Task | None) -> bool:
        return (
            task is not None
            and task._state == TaskState.COMPLETED
            and len(task._children) == 1
            and task.id not in workflow.subprocesses
            and task is not workflow.last_task
            and task is not owner.last_task
        )

    runs = []
    for task in owner.tasks.values():
        if not linkable(task) or linkable(task.parent):
            continue
        run = [task]
        while linkable(nxt := owner.tasks.get(run[-1]._children[0])):
            run.append(nxt)
        if len(run) > KEEP_RECENT + 1:
            runs.append(run)
    return runs
