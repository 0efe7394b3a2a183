"""Read the Camunda extension attributes that SpiffWorkflow parses but does not act on.

The result is plain JSON stored with each definition version, so the runtime never has to go
back to the XML to know who may work a task, when it is due, or what its form asks for.
"""

from __future__ import annotations

import re
from typing import Any

from lxml import etree

BPMN_NS = "http://www.omg.org/spec/BPMN/20100524/MODEL"
CAMUNDA_NS = "http://camunda.org/schema/1.0/bpmn"
NS = {"bpmn": BPMN_NS, "camunda": CAMUNDA_NS}

EXPRESSION = re.compile(r"^\s*[$#]\{(?P<body>.*)\}\s*$", re.DOTALL)

FORM_TYPES = {"string", "long", "boolean", "date", "enum", "decimal"}


def expression_body(value: str | None) -> str | None:
    """Return the Python text of a `${...}` expression, or None when `value` is a literal."""
    if value is None:
        return None
    match = EXPRESSION.match(value)
    return match.group("body").strip() if match else None


def split_list(value: str | None) -> list[str]:
    if not value:
        return []
    return [part.strip() for part in value.split(",") if part.strip()]


def _camunda(node: etree._Element, name: str) -> str | None:
    return node.get(f"{{{CAMUNDA_NS}}}{name}")


def _properties(node: etree._Element) -> dict[str, str]:
    props = node.xpath(
        "./bpmn:extensionElements/camunda:properties/camunda:property", namespaces=NS
    )
    return {p.get("name"): p.get("value") for p in props if p.get("name")}


def _form_fields(node: etree._Element) -> list[dict[str, Any]]:
    fields = []
    for field in node.xpath(
        "./bpmn:extensionElements/camunda:formData/camunda:formField", namespaces=NS
    ):
        props = {
            p.get("id"): p.get("value")
            for p in field.xpath("./camunda:properties/camunda:property", namespaces=NS)
        }
        constraints = {
            c.get("name"): c.get("config")
            for c in field.xpath("./camunda:validation/camunda:constraint", namespaces=NS)
        }
        field_type = field.get("type") or "string"
        # Camunda has no decimal form type; a `type=decimal` property marks a money field.
        if props.get("type") == "decimal":
            field_type = "decimal"
        fields.append(
            {
                "id": field.get("id"),
                "label": field.get("label") or field.get("id"),
                "type": field_type,
                "default": field.get("defaultValue"),
                "required": "required" in constraints,
                "constraints": {k: v for k, v in constraints.items() if k != "required"},
                "enum": [
                    {"id": v.get("id"), "name": v.get("name")}
                    for v in field.xpath("./camunda:value", namespaces=NS)
                ],
                "properties": props,
            }
        )
    return fields


def _in_event_subprocess(node: etree._Element) -> bool:
    parent = node.getparent()
    return (
        parent is not None
        and etree.QName(parent).localname == "subProcess"
        and parent.get("triggeredByEvent") == "true"
    )


def read_elements(tree: etree._ElementTree) -> dict[str, dict[str, Any]]:
    """Map every flow element id to the Camunda attributes the engine acts on."""
    elements: dict[str, dict[str, Any]] = {}
    for node in tree.getroot().iter(f"{{{BPMN_NS}}}*"):
        element_id = node.get("id")
        if not element_id or not isinstance(node.tag, str):
            continue
        kind = etree.QName(node).localname
        info: dict[str, Any] = {"type": kind, "name": node.get("name")}
        props = _properties(node)
        if props:
            info["properties"] = props
        if kind == "userTask":
            info.update(
                assignee=_camunda(node, "assignee"),
                candidate_groups=_camunda(node, "candidateGroups"),
                candidate_users=_camunda(node, "candidateUsers"),
                due_date=_camunda(node, "dueDate"),
                form=_form_fields(node),
            )
        elif kind == "serviceTask":
            info.update(service_type=_camunda(node, "type"), topic=_camunda(node, "topic"))
        elif kind == "businessRuleTask":
            info.update(decision_ref=_camunda(node, "decisionRef"))
        elif kind == "startEvent" and _in_event_subprocess(node):
            # SpiffWorkflow starts an event subprocess but never interrupts the process around
            # it; the engine does that itself for starts that are interrupting (the default).
            info.update(interrupting=node.get("isInterrupting", "true") != "false")
        if len(info) > 2 or kind in {"userTask", "intermediateCatchEvent", "receiveTask"}:
            elements[element_id] = info
    return elements
