"""Earlier loop rounds leave an instance's task tree; what it does next stays the same."""

from __future__ import annotations

from SpiffWorkflow.util.task import TaskState

from engine.definitions.compile import SourceFile, compile_definition
from engine.runtime.state import dump_state, load_state
from engine.runtime.workflow import KEEP_RECENT, FlowgateWorkflow, prune_finished_rounds
from engine.sandbox import make_script_engine

# One branch loops `rounds` times while the other waits at a user task; a join ends both.
MODEL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="looping" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="prepare" />
    <bpmn:scriptTask id="prepare" scriptFormat="python">
      <bpmn:script>done = 0</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f2" sourceRef="prepare" targetRef="split" />
    <bpmn:parallelGateway id="split" />
    <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="round" />
    <bpmn:sequenceFlow id="f4" sourceRef="split" targetRef="sign_off" />
    <bpmn:scriptTask id="round" scriptFormat="python">
      <bpmn:script>done = done + 1</bpmn:script>
    </bpmn:scriptTask>
    <bpmn:sequenceFlow id="f5" sourceRef="round" targetRef="again" />
    <bpmn:exclusiveGateway id="again" default="f7" />
    <bpmn:sequenceFlow id="f6" sourceRef="again" targetRef="round">
      <bpmn:conditionExpression>done &lt; rounds</bpmn:conditionExpression>
    </bpmn:sequenceFlow>
    <bpmn:sequenceFlow id="f7" sourceRef="again" targetRef="join" />
    <bpmn:userTask id="sign_off" camunda:candidateGroups="qa_manager" />
    <bpmn:sequenceFlow id="f8" sourceRef="sign_off" targetRef="join" />
    <bpmn:parallelGateway id="join" />
    <bpmn:sequenceFlow id="f9" sourceRef="join" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""


def _looped(rounds: int) -> tuple[FlowgateWorkflow, tuple]:
    specs = compile_definition([SourceFile("looping.bpmn", MODEL)]).specs["looping"]
    workflow = FlowgateWorkflow(*specs, script_engine=make_script_engine())
    workflow.get_tasks(state=TaskState.READY)[0].data["rounds"] = rounds
    workflow.do_engine_steps()
    return workflow, specs


def _specs(workflow: FlowgateWorkflow) -> set[str]:
    return {task.task_spec.name for task in workflow.tasks.values()}


def test_a_long_loop_keeps_only_its_recent_rounds_and_every_one_off_step():
    workflow, _ = _looped(300)
    before = len(workflow.tasks)

    removed = prune_finished_rounds(workflow)

    assert removed > 0 and len(workflow.tasks) == before - removed
    rounds_left = [t for t in workflow.tasks.values() if t.task_spec.name == "round"]
    assert len(rounds_left) <= KEEP_RECENT
    assert max(t.data["done"] for t in rounds_left) == 300  # the last round, as it ran
    assert {"start", "prepare", "split", "sign_off", "join", "end"} <= _specs(workflow)


def _finished(prune: bool) -> FlowgateWorkflow:
    """Loop 300 times, save and load, then sign off: the join ends both branches."""
    workflow, specs = _looped(300)
    if prune:
        assert prune_finished_rounds(workflow) > 0
    restored = load_state(dump_state(workflow), *specs)
    restored.script_engine = make_script_engine()
    [sign_off] = restored.get_tasks(state=TaskState.READY)
    assert sign_off.task_spec.name == "sign_off"
    sign_off.run()
    restored.do_engine_steps()
    return restored


def test_a_pruned_instance_saves_loads_and_finishes_as_the_unpruned_one_does():
    pruned, whole = _finished(prune=True), _finished(prune=False)

    # The join still sees the looping branch arrive, with the same data as without pruning.
    assert pruned.is_completed() and whole.is_completed()
    assert pruned.last_task.data == whole.last_task.data
    assert len(pruned.tasks) < len(whole.tasks) / 5


def test_a_short_instance_is_left_as_it_is():
    workflow, _ = _looped(5)
    tasks = dict(workflow.tasks)

    assert prune_finished_rounds(workflow) == 0
    assert workflow.tasks == tasks
