"""An instance's task queries answer exactly as SpiffWorkflow's tree walk does, in its order."""

from __future__ import annotations

from pathlib import Path

from SpiffWorkflow.bpmn import BpmnWorkflow
from SpiffWorkflow.util.task import TaskState

from engine.definitions.compile import SourceFile, compile_definition
from engine.runtime.state import dump_state, load_state
from engine.runtime.workflow import FlowgateWorkflow
from engine.sandbox import make_script_engine

# Three parallel branches (two user tasks and an embedded subprocess holding a third), joined.
MODEL = b"""<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
  xmlns:camunda="http://camunda.org/schema/1.0/bpmn" id="d" targetNamespace="t">
  <bpmn:process id="fan_out" isExecutable="true">
    <bpmn:startEvent id="start" />
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="split" />
    <bpmn:parallelGateway id="split" />
    <bpmn:sequenceFlow id="f2" sourceRef="split" targetRef="pick" />
    <bpmn:sequenceFlow id="f3" sourceRef="split" targetRef="pack" />
    <bpmn:sequenceFlow id="f4" sourceRef="split" targetRef="inspect" />
    <bpmn:userTask id="pick" name="Pick" camunda:candidateGroups="warehouse" />
    <bpmn:userTask id="pack" name="Pack" camunda:candidateGroups="warehouse" />
    <bpmn:subProcess id="inspect" name="Inspect">
      <bpmn:startEvent id="inspect_start" />
      <bpmn:sequenceFlow id="s1" sourceRef="inspect_start" targetRef="check" />
      <bpmn:userTask id="check" name="Check" camunda:candidateGroups="qa_manager" />
      <bpmn:sequenceFlow id="s2" sourceRef="check" targetRef="inspect_end" />
      <bpmn:endEvent id="inspect_end" />
    </bpmn:subProcess>
    <bpmn:sequenceFlow id="f5" sourceRef="pick" targetRef="join" />
    <bpmn:sequenceFlow id="f6" sourceRef="pack" targetRef="join" />
    <bpmn:sequenceFlow id="f7" sourceRef="inspect" targetRef="join" />
    <bpmn:parallelGateway id="join" />
    <bpmn:sequenceFlow id="f8" sourceRef="join" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""

LIVE_MASKS = (
    TaskState.READY,
    TaskState.WAITING,
    TaskState.READY | TaskState.WAITING | TaskState.STARTED,
    TaskState.FUTURE | TaskState.READY,
)


def _walked(workflow: FlowgateWorkflow, mask: int) -> list[str]:
    return [t.task_spec.name for t in BpmnWorkflow.get_tasks(workflow, state=mask)]


def _queried(workflow: FlowgateWorkflow, mask: int) -> list[str]:
    return [t.task_spec.name for t in workflow.get_tasks(state=mask)]


def _assert_same_answers(workflow: FlowgateWorkflow) -> None:
    for mask in LIVE_MASKS:
        assert _queried(workflow, mask) == _walked(workflow, mask), TaskState.get_name(mask)


def test_task_queries_match_the_tree_walk_through_parallel_branches_and_a_subprocess():
    spec, subs = compile_definition([SourceFile("fan_out.bpmn", MODEL)]).specs["fan_out"]
    workflow = FlowgateWorkflow(spec, subs, script_engine=make_script_engine())
    workflow.do_engine_steps()
    _assert_same_answers(workflow)
    assert _queried(workflow, TaskState.READY) == ["pick", "pack", "check"]
    # Completed in an order other than the tree's, reloaded in between as commands do.
    for name in ("pack", "check", "pick"):
        workflow = load_state(dump_state(workflow), spec, subs)
        assert isinstance(workflow, FlowgateWorkflow)
        (task,) = [t for t in workflow.get_tasks(state=TaskState.READY) if t.task_spec.name == name]
        task.run()
        workflow.do_engine_steps()
        _assert_same_answers(workflow)
    assert workflow.completed


# Loops through a script task until `done` reaches `rounds`, then waits at a user task.
LOOP = (Path(__file__).resolve().parents[1] / "fixtures" / "rounds.bpmn").read_bytes()


def test_task_queries_match_the_tree_walk_after_a_long_loop_of_rounds():
    spec, subs = compile_definition([SourceFile("rounds.bpmn", LOOP)]).specs["rounds"]
    # 600 rounds leave a path past SpiffWorkflow's old walk depth limit (1,000 levels).
    for rounds in (3, 600):
        workflow = FlowgateWorkflow(spec, subs, script_engine=make_script_engine())
        workflow.get_tasks(state=TaskState.READY)[0].data.update(done=0, rounds=rounds)
        workflow.do_engine_steps()
        _assert_same_answers(workflow)
        assert _queried(workflow, TaskState.READY) == ["review"]
        assert not workflow.is_completed()
