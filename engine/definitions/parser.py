"""Parse BPMN and DMN with SpiffWorkflow's CamundaParser, hardened for untrusted uploads."""

from __future__ import annotations

from typing import Any

from lxml import etree
from SpiffWorkflow.bpmn.parser.BpmnParser import full_tag
from SpiffWorkflow.camunda.parser.CamundaParser import CamundaParser
from SpiffWorkflow.camunda.parser.task_spec import BusinessRuleTaskParser, CamundaTaskParser
from SpiffWorkflow.camunda.specs.business_rule_task import BusinessRuleTask

from engine.definitions import durations  # noqa: F401  (bounds every duration Spiff parses)
from engine.definitions.task_specs import ExternalServiceTask, RulesetTask

CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
MAX_DOCUMENT_BYTES = 2 * 1024 * 1024


class UnsafeDocument(ValueError):
    """An upload that the XML parser must not process (DTDs, entities, size)."""


def parse_xml(content: bytes, filename: str) -> etree._ElementTree:
    """Parse one uploaded document without DTDs, entities or network access.

    Billion-laughs and external-entity attacks need a DTD, so any DOCTYPE is refused outright
    rather than trusting the parser to expand it safely.
    """
    if len(content) > MAX_DOCUMENT_BYTES:
        raise UnsafeDocument(f"{filename}: larger than {MAX_DOCUMENT_BYTES} bytes")
    head = content[:4096].upper()
    if b"<!DOCTYPE" in head or b"<!ENTITY" in content.upper():
        raise UnsafeDocument(f"{filename}: DTDs and entities are not allowed")
    parser = etree.XMLParser(
        resolve_entities=False,
        no_network=True,
        load_dtd=False,
        dtd_validation=False,
        huge_tree=False,
        remove_comments=True,
    )
    try:
        tree = etree.ElementTree(etree.fromstring(content, parser))
    except etree.XMLSyntaxError as exc:
        raise UnsafeDocument(f"{filename}: not well-formed XML: {exc}") from exc
    if tree.docinfo.doctype:
        raise UnsafeDocument(f"{filename}: DTDs and entities are not allowed")
    return tree


class ExternalServiceTaskParser(CamundaTaskParser):
    def create_task(self) -> ExternalServiceTask:
        topic = self.node.get(f"{{{CAMUNDA_NS}}}topic")
        return ExternalServiceTask(self.spec, self.bpmn_id, topic=topic, **self.bpmn_attributes)


class FlowgateBusinessRuleTaskParser(BusinessRuleTaskParser):
    """DMN decision when the model ships one by that id, otherwise a flowgate ruleset."""

    def create_task(self) -> Any:
        decision_ref = self.get_decision_ref(self.node)
        if decision_ref in self.process_parser.parser.dmn_parsers:
            return super().create_task()
        return RulesetTask(
            self.spec, self.bpmn_id, decision_ref=decision_ref, **self.bpmn_attributes
        )


class FlowgateParser(CamundaParser):
    OVERRIDE_PARSER_CLASSES = {
        **CamundaParser.OVERRIDE_PARSER_CLASSES,
        full_tag("serviceTask"): (ExternalServiceTaskParser, ExternalServiceTask),
        full_tag("businessRuleTask"): (FlowgateBusinessRuleTaskParser, BusinessRuleTask),
    }
