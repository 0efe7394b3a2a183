"""Parsing and validation of uploaded models, without a database."""

from __future__ import annotations

from pathlib import Path

import pytest

from engine.definitions.compile import SourceFile, compile_definition
from engine.errors import InvalidDefinition

FIXTURE = (Path(__file__).resolve().parents[1] / "fixtures" / "approval.bpmn").read_bytes()


def compile_variant(content: bytes, **kwargs):
    return compile_definition([SourceFile("m.bpmn", content)], **kwargs)


def errors_of(content: bytes, **kwargs) -> list[dict]:
    with pytest.raises(InvalidDefinition) as refused:
        compile_variant(content, **kwargs)
    return refused.value.errors


def test_camunda_user_task_attributes_are_read():
    compiled = compile_variant(FIXTURE)
    task = compiled.elements["approval"]["approve_order"]
    assert task["candidate_groups"] == "${approver_group}"
    assert task["due_date"] == "P2D"
    assert task["properties"] == {"sla": "P1D"}
    assert [f["id"] for f in task["form"]] == ["decision", "comment"]
    assert task["form"][0]["required"] and task["form"][0]["enum"][1]["id"] == "reject"
    assert task["form"][1]["constraints"] == {"maxlength": "200"}
    assert compiled.elements["approval"]["lookup"]["topic"] == "demo.lookup"


def test_unknown_service_topic_is_refused_naming_the_element():
    errors = errors_of(FIXTURE, known_topic=lambda topic: False)
    assert errors == [{"element_id": "lookup", "message": "unknown service topic 'demo.lookup'"}]


def test_script_that_imports_is_refused_at_deploy_time():
    hostile = FIXTURE.replace(b'paid = payment_received["amount"]', b"import os")
    assert [e["element_id"] for e in errors_of(hostile)] == ["book"]


def test_condition_with_dunder_escape_is_refused():
    hostile = FIXTURE.replace(b"amount &gt; 1000", b"().__class__.__bases__")
    assert {e["element_id"] for e in errors_of(hostile)} == {"f_big"}


def test_condition_on_a_flow_that_leaves_no_gateway_is_refused():
    bad = FIXTURE.replace(
        b'<bpmn:sequenceFlow id="f4" sourceRef="wait_payment" targetRef="book" />',
        b'<bpmn:sequenceFlow id="f4" sourceRef="wait_payment" targetRef="book">'
        b"<bpmn:conditionExpression>True</bpmn:conditionExpression></bpmn:sequenceFlow>",
    )
    assert "is not a gateway" in errors_of(bad)[0]["message"]


def test_model_without_start_event_is_refused():
    bad = FIXTURE.replace(b'<bpmn:startEvent id="start" />', b"")
    assert any("no start event" in e["message"] for e in errors_of(bad))


def test_billion_laughs_is_refused_before_parsing():
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;&lol;">]><bpmn:definitions '
        b'xmlns:bpmn="http://www.omg.org/spec/BPMN/20100524/MODEL">&lol2;</bpmn:definitions>'
    )
    assert "DTD" in errors_of(bomb)[0]["message"]


def test_identical_files_have_identical_checksums_and_changes_differ():
    assert compile_variant(FIXTURE).checksum == compile_variant(FIXTURE).checksum
    changed = FIXTURE.replace(b"P2D", b"P3D")
    assert compile_variant(changed).checksum != compile_variant(FIXTURE).checksum
