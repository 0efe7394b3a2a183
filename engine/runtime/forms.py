"""Task forms from `camunda:formData`: validate a completion and describe it as JSON Schema.

Field types are Camunda's (string, long, boolean, date, enum) plus decimal, which Camunda lacks
and a modeller marks with a `type=decimal` property; money stays `Decimal`, never float.
Constraints are Camunda's `min`, `max`, `minlength`, `maxlength` and `pattern`. A constraint
the modeller wrote badly is reported against its field instead of failing the request.
"""

from __future__ import annotations

import re
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.errors import ValidationFailed

# A Java long, because Camunda's `long` is one and the ERP on the other side may be too.
LONG_MIN, LONG_MAX = -(2**63), 2**63 - 1
DECIMAL_PATTERN = r"^-?\d+(\.\d+)?$"
_MAX_PATTERN_INPUT = 10_000


class FieldError(ValueError):
    """One field's problem, phrased for the person filling in the form."""


def _long(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise FieldError("must be a whole number")
    try:
        number = int(value)
    except ValueError:
        raise FieldError("must be a whole number") from None
    if not LONG_MIN <= number <= LONG_MAX:
        raise FieldError("is out of range for a whole number")
    return number


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | str | float):
        raise FieldError('must be a decimal number, e.g. "1200.50"')
    # A JSON number becomes its shortest decimal text (0.1 -> "0.1"), never the binary float.
    text = str(value).strip()
    if not re.fullmatch(DECIMAL_PATTERN, text):
        raise FieldError('must be a decimal number, e.g. "1200.50"')
    return Decimal(text)


def _date(value: Any) -> date:
    if not isinstance(value, str):
        raise FieldError("must be an ISO date (YYYY-MM-DD)")
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise FieldError("must be an ISO date (YYYY-MM-DD)") from None


def _coerce(field: dict[str, Any], value: Any) -> Any:
    kind = field.get("type", "string")
    if kind == "long":
        return _long(value)
    if kind == "decimal":
        return _decimal(value)
    if kind == "date":
        return _date(value)
    if kind == "boolean":
        if not isinstance(value, bool):
            raise FieldError("must be true or false")
        return value
    if kind == "enum":
        allowed = [option["id"] for option in field.get("enum", [])]
        if value not in allowed:
            raise FieldError(f"must be one of {allowed}")
        return value
    if not isinstance(value, str):
        raise FieldError("must be text")
    return value


def _bound(field: dict[str, Any], name: str) -> Any:
    """A `min`/`max` constraint in the field's own type; a bad one is the model's fault."""
    raw = field["constraints"][name]
    try:
        if field.get("type") == "date":
            return date.fromisoformat(str(raw))
        return Decimal(str(raw).strip())
    except (ValueError, InvalidOperation):
        raise FieldError(f"has an invalid '{name}' constraint in the model: {raw!r}") from None


def _length(field: dict[str, Any], name: str) -> int:
    raw = field["constraints"][name]
    try:
        return int(str(raw).strip())
    except ValueError:
        raise FieldError(f"has an invalid '{name}' constraint in the model: {raw!r}") from None


def constraint_problems(field: dict[str, Any]) -> list[str]:
    """What is wrong with a form field's constraints as modelled, checked at deploy, so that no
    task is published that no value could ever complete."""
    problems = []
    for name in ("min", "max", "minlength", "maxlength"):
        if name not in (field.get("constraints") or {}):
            continue
        try:
            bound = _bound(field, name) if name in ("min", "max") else _length(field, name)
        except FieldError as exc:
            problems.append(str(exc))
            continue
        if name.endswith("length") and bound < 0:
            problems.append(f"has a negative '{name}' constraint: {bound}")
    pattern = (field.get("constraints") or {}).get("pattern")
    if pattern is not None:
        try:
            re.compile(pattern)
        except re.error:
            problems.append(f"has an invalid 'pattern' constraint in the model: {pattern!r}")
    return problems


def _check_constraints(field: dict[str, Any], value: Any) -> None:
    rules = field.get("constraints") or {}
    comparable = isinstance(value, int | Decimal | date) and not isinstance(value, bool)
    if "min" in rules and comparable and value < _bound(field, "min"):
        raise FieldError(f"must be at least {rules['min']}")
    if "max" in rules and comparable and value > _bound(field, "max"):
        raise FieldError(f"must be at most {rules['max']}")
    if not isinstance(value, str):
        return
    if "minlength" in rules and len(value) < _length(field, "minlength"):
        raise FieldError(f"must be at least {rules['minlength']} characters")
    if "maxlength" in rules and len(value) > _length(field, "maxlength"):
        raise FieldError(f"must be at most {rules['maxlength']} characters")
    if "pattern" in rules:
        try:
            pattern = re.compile(rules["pattern"])
        except re.error:
            raise FieldError(
                f"has an invalid 'pattern' constraint in the model: {rules['pattern']!r}"
            ) from None
        # Bounding the input keeps a careless pattern from backtracking for minutes.
        if len(value) > _MAX_PATTERN_INPUT or not pattern.fullmatch(value):
            raise FieldError(f"must match {rules['pattern']}")


def validate_form(fields: list[dict[str, Any]], variables: dict[str, Any]) -> dict[str, Any]:
    """Return the form's values coerced; raise listing every field error.

    A task with a form takes its fields and nothing else. Anything else sent with a completion
    went straight into the process data, so an approver could overwrite what later steps read
    (point a shipment check at another `order_no`, reset an approval chain): each such name is
    refused. A task without a form takes what is sent, as in Camunda: a model that declares no
    form leaves the completion's variables to the caller.
    """
    if not fields:
        return dict(variables)
    declared = {field["id"] for field in fields}
    errors = [
        {"field": name, "message": "is not a field of this task's form"}
        for name in variables
        if name not in declared
    ]
    result = {name: value for name, value in variables.items() if name in declared}
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
        except FieldError as exc:
            errors.append({"field": name, "message": str(exc)})
            continue
        result[name] = coerced
    if errors:
        raise ValidationFailed(f"{len(errors)} form field(s) are invalid", errors)
    return result


def _field_schema(field: dict[str, Any]) -> dict[str, Any]:
    kind = field.get("type", "string")
    rules = field.get("constraints") or {}
    schema: dict[str, Any] = {"title": field.get("label") or field["id"]}
    if kind == "long":
        schema["type"] = "integer"
    elif kind == "boolean":
        schema["type"] = "boolean"
    elif kind == "date":
        schema.update(type="string", format="date")
    elif kind == "decimal":
        # Text, so a UI sends "1200.50" and nothing is lost to binary floating point.
        schema.update(type="string", format="decimal", pattern=DECIMAL_PATTERN)
    elif kind == "enum":
        options = field.get("enum", [])
        schema["enum"] = [o["id"] for o in options]
        schema["oneOf"] = [{"const": o["id"], "title": o.get("name") or o["id"]} for o in options]
    else:
        schema["type"] = "string"
    for name, keyword in (("minlength", "minLength"), ("maxlength", "maxLength")):
        if name in rules and str(rules[name]).strip().isdigit():
            schema[keyword] = int(rules[name])
    if "pattern" in rules and kind == "string":
        # JSON Schema patterns search; the server matches the whole value, so anchor it.
        schema["pattern"] = f"^(?:{rules['pattern']})$"
    for name, keyword in (("min", "minimum"), ("max", "maximum")):
        if name in rules:
            if kind == "long":
                try:
                    schema[keyword] = int(Decimal(str(rules[name])))
                except (InvalidOperation, ValueError):
                    continue
            elif kind in ("decimal", "date"):
                # JSON Schema's minimum applies to numbers only; say it for a UI to show.
                schema[f"x-{keyword}"] = str(rules[name])
    if field.get("default") not in (None, ""):
        schema["default"] = field["default"]
    return schema


def form_schema(fields: list[dict[str, Any]]) -> dict[str, Any]:
    """The form as JSON Schema (draft 2020-12), so any UI can render and pre-check it."""
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "type": "object",
        "properties": {f["id"]: _field_schema(f) for f in fields},
        "required": [f["id"] for f in fields if f.get("required")],
        # As validate_form: a completion carries the form's fields and nothing else.
        **({"additionalProperties": False} if fields else {}),
    }
