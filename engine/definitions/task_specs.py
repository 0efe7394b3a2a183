"""Task specs for the parts of a Camunda model that SpiffWorkflow leaves to the host.

- External service tasks (`camunda:type="external" camunda:topic="credit.check"`) call the
  handler registered for their topic.
- Business rule tasks whose `camunda:decisionRef` names a flowgate ruleset rather than a DMN
  decision evaluate that ruleset and record the decision.

Both reach the running command through `engine.runtime.context`, because SpiffWorkflow gives a
task spec nothing but the task.
"""

from __future__ import annotations

from typing import Any

from SpiffWorkflow.bpmn.specs.defaults import ServiceTask
from SpiffWorkflow.bpmn.specs.mixins.bpmn_spec_mixin import BpmnSpecMixin
from SpiffWorkflow.bpmn.specs.mixins.script_task import ScriptEngineTask

from engine.runtime.context import current_execution


class ExternalServiceTask(ServiceTask):
    """A service task bound to a handler by topic name."""

    def __init__(self, wf_spec: Any, bpmn_id: str, topic: str | None = None, **kwargs: Any):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.topic = topic

    def _execute(self, task: Any) -> bool:
        if self.topic is None:
            # A plain service task without a topic does nothing, as in Camunda's "no-op".
            return True
        current_execution().call_service(self.topic, task)
        return True


class RulesetTask(ScriptEngineTask, BpmnSpecMixin):
    """A business rule task evaluated by the flowgate rules host."""

    def __init__(self, wf_spec: Any, bpmn_id: str, decision_ref: str, **kwargs: Any):
        super().__init__(wf_spec, bpmn_id, **kwargs)
        self.decision_ref = decision_ref

    def _execute(self, task: Any) -> bool:
        current_execution().evaluate_ruleset(self.decision_ref, task)
        return True
