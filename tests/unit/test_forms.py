from datetime import date
from decimal import Decimal

import pytest

from engine.errors import ValidationFailed
from engine.runtime.forms import validate_form

FIELDS = [
    {
        "id": "decision",
        "type": "enum",
        "required": True,
        "constraints": {},
        "enum": [{"id": "approve", "name": "Approve"}, {"id": "reject", "name": "Reject"}],
    },
    {
        "id": "amount",
        "type": "decimal",
        "required": False,
        "constraints": {"min": "0", "max": "1000"},
    },
    {"id": "qty", "type": "long", "required": False, "constraints": {}},
    {"id": "ship_on", "type": "date", "required": False, "constraints": {}},
    {
        "id": "reason",
        "type": "string",
        "required": False,
        "constraints": {"maxlength": "10", "pattern": "[a-z ]+"},
    },
]


def test_valid_completion_is_coerced_to_decimal_and_date():
    values = validate_form(
        FIELDS, {"decision": "approve", "amount": "12.50", "ship_on": "2026-12-01"}
    )
    assert values["amount"] == Decimal("12.50")
    assert values["ship_on"] == date(2026, 12, 1)


def test_every_bad_field_is_listed_at_once():
    with pytest.raises(ValidationFailed) as refused:
        validate_form(
            FIELDS,
            {"amount": "2000", "qty": True, "ship_on": "tomorrow", "reason": "Way Too Long Reason"},
        )
    assert {e["field"] for e in refused.value.errors} == {
        "decision",
        "amount",
        "qty",
        "ship_on",
        "reason",
    }


def test_enum_value_outside_the_options_is_refused():
    with pytest.raises(ValidationFailed, match="1 form field"):
        validate_form(FIELDS, {"decision": "maybe"})


def test_money_is_never_a_float():
    values = validate_form(FIELDS, {"decision": "reject", "amount": 0.1})
    assert values["amount"] == Decimal("0.1")
