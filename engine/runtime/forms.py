"""Validate a task completion against its `camunda:formData` fields."""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.errors import ValidationFailed


def _coerce(field: dict[str, Any], value: Any) -> Any:
    kind = field["type"]
    if kind == "long":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise ValueError("must be a whole number")
        return int(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise ValueError("must be true or false")
        return value
    if kind == "decimal":
        if isinstance(value, bool) or not isinstance(value, int | str | float):
            raise ValueError("must be a decimal number")
        try:
            number = Decimal(str(value))
        except InvalidOperation:
            raise ValueError("must be a decimal number") from None
        if not number.is_finite():
            raise ValueError("must be a finite number")
        return number
    if kind == "date":
        if not isinstance(value, str):
            raise ValueError("must be an ISO date (YYYY-MM-DD)")
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise ValueError("must be an ISO date (YYYY-MM-DD)") from None
    if kind == "enum":
        allowed = [option["id"] for option in field.get("enum", [])]
        if value not in allowed:
            raise ValueError(f"must be one of {allowed}")
        return value
    if not isinstance(value, str):
        raise ValueError("must be text")
    return value


def _check_constraints(field: dict[str, Any], value: Any) -> None:
    rules = field.get("constraints", {})
    if "min" in rules and isinstance(value, int | Decimal) and value < Decimal(rules["min"]):
        raise ValueError(f"must be at least {rules['min']}")
    if "max" in rules and isinstance(value, int | Decimal) and value > Decimal(rules["max"]):
        raise ValueError(f"must be at most {rules['max']}")
    if isinstance(value, str):
        if "minlength" in rules and len(value) < int(rules["minlength"]):
            raise ValueError(f"must be at least {rules['minlength']} characters")
        if "maxlength" in rules and len(value) > int(rules["maxlength"]):
            raise ValueError(f"must be at most {rules['maxlength']} characters")
        if "pattern" in rules and not re.fullmatch(rules["pattern"], value):
            raise ValueError(f"must match {rules['pattern']}")


def validate_form(fields: list[dict[str, Any]], variables: dict[str, Any]) -> dict[str, Any]:
    """Return the variables with form values coerced; raise listing every field error."""
    errors = []
    result = dict(variables)
    for field in fields:
        name = field["id"]
        value = variables.get(name)
        if value is None or value == "":
            if field.get("required"):
                errors.append({"field": name, "message": "is required"})
            continue
        try:
            coerced = _coerce(field, value)
            _check_constraints(field, coerced)
        except ValueError as exc:
            errors.append({"field": name, "message": str(exc)})
            continue
        result[name] = coerced
    if errors:
        raise ValidationFailed(f"{len(errors)} form field(s) are invalid", errors)
    return result
