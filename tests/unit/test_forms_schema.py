"""Form constraints a modeller sets, and the JSON Schema a UI renders from them."""

from __future__ import annotations

from decimal import Decimal

import pytest

from engine.errors import ValidationFailed
from engine.runtime.forms import form_schema, validate_form


def field(fid: str, kind: str = "string", required: bool = False, **constraints: str) -> dict:
    return {
        "id": fid,
        "label": fid.title(),
        "type": kind,
        "required": required,
        "constraints": constraints,
        "enum": [],
    }


def errors(fields: list[dict], values: dict) -> dict[str, str]:
    with pytest.raises(ValidationFailed) as refused:
        validate_form(fields, values)
    return {e["field"]: e["message"] for e in refused.value.errors}


def test_min_and_max_apply_to_whole_numbers_money_and_dates():
    fields = [
        field("copies", "long", min="1", max="3"),
        field("amount", "decimal", min="0.01", max="100.00"),
        field("ship_on", "date", min="2026-11-23", max="2026-12-31"),
    ]
    found = errors(fields, {"copies": 4, "amount": "0.00", "ship_on": "2027-01-01"})
    assert found == {
        "copies": "must be at most 3",
        "amount": "must be at least 0.01",
        "ship_on": "must be at most 2026-12-31",
    }
    ok = validate_form(fields, {"copies": "3", "amount": "100.00", "ship_on": "2026-11-23"})
    assert ok["amount"] == Decimal("100.00") and ok["copies"] == 3


def test_text_length_and_pattern_are_checked_together_with_required():
    fields = [
        field("cost_center", pattern="CC-[0-9]{3}", maxlength="6"),
        field("note", minlength="3"),
        field("decision", required=True),
    ]
    found = errors(fields, {"cost_center": "CC-1000", "note": "ok"})
    assert set(found) == {"cost_center", "note", "decision"}
    assert found["decision"] == "is required"


def test_badly_written_model_constraint_is_a_field_error_not_a_crash():
    fields = [field("amount", "decimal", min="zero"), field("code", pattern="([a-z")]
    found = errors(fields, {"amount": "5", "code": "abc"})
    assert "invalid 'min' constraint" in found["amount"]
    assert "invalid 'pattern' constraint" in found["code"]


@pytest.mark.parametrize(
    ("kind", "value"),
    [
        ("long", "12abc"),
        ("long", 2**64),
        ("long", 1.5),
        ("decimal", "1e5"),
        ("decimal", "NaN"),
        ("decimal", True),
        ("boolean", "yes"),
        ("date", "23/11/2026"),
        ("string", 42),
    ],
)
def test_values_of_the_wrong_kind_are_refused(kind, value):
    assert "x" in errors([field("x", kind)], {"x": value})


def test_schema_describes_types_required_fields_and_constraints():
    fields = [
        {
            **field("decision", "enum", required=True),
            "enum": [{"id": "approve", "name": "Approve"}, {"id": "reject", "name": "Reject"}],
        },
        field("copies", "long", min="1", max="3"),
        field("amount", "decimal", min="0"),
        field("ship_on", "date"),
        field("urgent", "boolean"),
        field("cost_center", pattern="CC-[0-9]{3}", maxlength="6"),
    ]
    schema = form_schema(fields)
    props = schema["properties"]
    assert schema["type"] == "object" and schema["required"] == ["decision"]
    assert props["decision"]["enum"] == ["approve", "reject"]
    assert props["decision"]["oneOf"][0] == {"const": "approve", "title": "Approve"}
    assert props["copies"] == {"title": "Copies", "type": "integer", "minimum": 1, "maximum": 3}
    assert props["amount"]["type"] == "string" and props["amount"]["format"] == "decimal"
    assert props["amount"]["x-minimum"] == "0"
    assert props["ship_on"] == {"title": "Ship_On", "type": "string", "format": "date"}
    assert props["urgent"]["type"] == "boolean"
    assert props["cost_center"]["maxLength"] == 6
    assert props["cost_center"]["pattern"] == "^(?:CC-[0-9]{3})$"


def test_a_task_without_a_form_takes_what_is_sent_and_one_with_a_form_only_its_fields():
    assert form_schema([])["properties"] == {}
    assert "additionalProperties" not in form_schema([])
    assert validate_form([], {"note": "kept"}) == {"note": "kept"}
    form = [{"id": "decision", "type": "string"}]
    assert form_schema(form)["additionalProperties"] is False
    with pytest.raises(ValidationFailed) as refused:
        validate_form(form, {"decision": "approve", "order_no": "SO-OTHER"})
    assert refused.value.errors == [
        {"field": "order_no", "message": "is not a field of this task's form"}
    ]
