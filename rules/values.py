"""Typed fact and parameter values, and their exact encoding for durable-rules.

durable-rules compares JSON numbers; binary floats would make a 10,000.00 limit fuzzy, so
decimals travel as integers scaled by 10,000 (half-even) and dates as day ordinals (DESIGN §3).
"""

from __future__ import annotations

from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from fractions import Fraction
from typing import Any

SCALE = 10_000
_QUANTUM = Decimal(1) / SCALE
# Integers beyond 2**53 may lose precision inside the engine; refuse them instead.
MAX_ENGINE_INT = 2**53

FACT_TYPES = frozenset({"decimal", "int", "bool", "string", "date"})
# Lists of dates (holiday calendars) are parameters for Python derivations only.
PARAMETER_TYPES = FACT_TYPES | {"date_list"}
ORDERED_TYPES = frozenset({"decimal", "int", "date"})


def coerce(value_type: str, value: Any) -> Any:
    """Return `value` as the Python type for `value_type`; raise ValueError naming the problem."""
    if value_type == "decimal":
        return _decimal(value)
    if value_type == "int":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"expected an integer, got {value!r}")
        _check_engine_range(value)
        return value
    if value_type == "bool":
        if not isinstance(value, bool):
            raise ValueError(f"expected true or false, got {value!r}")
        return value
    if value_type == "string":
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {value!r}")
        return value
    if value_type == "date":
        return _date(value)
    if value_type == "date_list":
        if not isinstance(value, list | tuple):
            raise ValueError(f"expected a list of ISO dates, got {value!r}")
        return tuple(sorted(_date(item) for item in value))
    raise ValueError(f"unknown type {value_type!r}")


def to_engine(value_type: str, value: Any) -> Any:
    """Encode a coerced value for the engine: never a float."""
    if value_type == "decimal":
        return int(value.quantize(_QUANTUM, rounding=ROUND_HALF_EVEN) * SCALE)
    if value_type == "date":
        return value.toordinal()
    if value_type == "date_list":
        return [item.toordinal() for item in value]
    return value


def to_json(value_type: str, value: Any) -> Any:
    """Encode a coerced value for a decision record: decimals as strings, dates ISO."""
    if value_type == "decimal":
        return str(value)
    if value_type == "date":
        return value.isoformat()
    if value_type == "date_list":
        return [item.isoformat() for item in value]
    return value


def render(value: Any) -> str:
    """Show an original value in a reason text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decimal(value: Any) -> Decimal:
    if isinstance(value, bool):
        raise ValueError(f"expected a decimal, got {value!r}")
    try:
        # str() of a float is its shortest round-trip form, i.e. what the sender typed.
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, TypeError, ValueError):
        raise ValueError(f"expected a decimal, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite decimal, got {value!r}")
    _check_engine_range(int(number * SCALE))
    return number


def _date(value: Any) -> date:
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"expected an ISO date, got {value!r}")


def _check_engine_range(number: int) -> None:
    if abs(number) >= MAX_ENGINE_INT:
        raise ValueError("value is too large for exact comparison in the rules engine")


def percent_ceiling(part: Decimal, whole: Decimal) -> Decimal:
    """`part` as a percentage of `whole`, rounded up to the engine's 4 decimals.

    Rounding up keeps "share > threshold" exact for any threshold with at most 4 decimals
    (every parameter is scaled to 4 decimals): x > t exactly when ceil4(x) > t.
    """
    exact = Fraction(part) * 100 / Fraction(whole)
    scaled = -((-exact.numerator * SCALE) // exact.denominator)
    return Decimal(scaled) / SCALE
