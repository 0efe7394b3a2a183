"""Small models for the inbox tests: a reviewed purchase and a task assigned by expression."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from api.bootstrap import Container
from engine.definitions.compile import SourceFile

HEAD = """<?xml version="1.0" encoding="UTF-8"?>
<bpmn:definitions xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL"
                  xmlns:camunda="http://camunda.org/schema/1.0/bpmn"
                  id="Defs_{key}" targetNamespace="http://flowgate.example/test">
  <bpmn:process id="{key}" isExecutable="true">
    <bpmn:startEvent id="start" />
"""

REVIEW = (
    HEAD.format(key="review")
    + """
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="why" />
    <bpmn:businessRuleTask id="why" name="Check the wait" camunda:decisionRef="escalation" />
    <bpmn:sequenceFlow id="f2" sourceRef="why" targetRef="review_po" />
    <bpmn:userTask id="review_po" name="Review purchase"
        camunda:candidateGroups="${approver_group}" camunda:candidateUsers="${backup_user}"
        camunda:dueDate="P3D">
      <bpmn:extensionElements>
        <camunda:formData>
          <camunda:formField id="decision" label="Decision" type="enum">
            <camunda:validation><camunda:constraint name="required" /></camunda:validation>
            <camunda:value id="approve" name="Approve" />
            <camunda:value id="reject" name="Reject" />
          </camunda:formField>
          <camunda:formField id="approved_amount" label="Approved amount" type="string">
            <camunda:properties><camunda:property id="type" value="decimal" /></camunda:properties>
            <camunda:validation>
              <camunda:constraint name="min" config="0" />
              <camunda:constraint name="max" config="50000" />
            </camunda:validation>
          </camunda:formField>
          <camunda:formField id="copies" label="Copies" type="long">
            <camunda:validation><camunda:constraint name="max" config="3" /></camunda:validation>
          </camunda:formField>
          <camunda:formField id="cost_center" label="Cost center" type="string">
            <camunda:validation>
              <camunda:constraint name="pattern" config="CC-[0-9]{3}" />
              <camunda:constraint name="maxlength" config="6" />
            </camunda:validation>
          </camunda:formField>
        </camunda:formData>
        <camunda:properties>
          <camunda:property name="sla" value="1" />
          <camunda:property name="escalate_to" value="finance_director" />
          <camunda:property name="process_owner" value="olga" />
        </camunda:properties>
      </bpmn:extensionElements>
    </bpmn:userTask>
    <bpmn:sequenceFlow id="f3" sourceRef="review_po" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""
)

ASSIGNED = (
    HEAD.format(key="assigned")
    + """
    <bpmn:sequenceFlow id="f1" sourceRef="start" targetRef="sign_off" />
    <bpmn:userTask id="sign_off" name="Manager sign-off" camunda:assignee="${requester_manager}" />
    <bpmn:sequenceFlow id="f2" sourceRef="sign_off" targetRef="end" />
    <bpmn:endEvent id="end" />
  </bpmn:process>
</bpmn:definitions>
"""
)

# The escalation ruleset stands in for any decision that sends a task to a person.
WHY = {
    "age_business_days": 5,
    "sla_business_days": 2,
    "sla_multiple": 2,
    "level": 0,
    "escalate_to": "finance_director",
}

PURCHASE = {
    "approver_group": "credit_manager",
    "backup_user": "bella",
    "escalation_facts": WHY,
    "requisition": {
        "req_no": "PR-2001",
        "supplier_id": "S001",
        "currency": "CNY",
        "lines": [{"line_no": 1, "qty": 100, "unit_price": "35.00"}],
    },
}

MONDAY = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


class Clock:
    """An injected clock the test moves by hand."""

    def __init__(self, now: datetime = MONDAY) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def deploy_models(container: Container, clock: Clock) -> None:
    container.runtime.clock = clock
    with container.runtime.uow() as uow:
        for name, xml in (("review.bpmn", REVIEW), ("assigned.bpmn", ASSIGNED)):
            container.runtime.catalog.deploy(uow, [SourceFile(name, xml.encode())], "test")
        uow.commit()


def purchase(**changes: Any) -> dict[str, Any]:
    return {**PURCHASE, **changes}
