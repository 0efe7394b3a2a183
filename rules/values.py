"""Typed fact and parameter values, and their exact encoding for durable-rules.

durable-rules compares JSON numbers; binary floats would make a 10,000.00 limit fuzzy, so
decimals travel as integers scaled by 10,000 (half-even) and dates as day ordinals (DESIGN §3).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from json.encoder import encode_basestring_ascii
from typing import Any

SCALE = 10_000
_DECIMALS = 4  # SCALE == 10**_DECIMALS
# Integers beyond 2**53 may lose precision inside the engine; refuse them instead.
MAX_ENGINE_INT = 2**53
_MAX_ENGINE_DECIMAL = Decimal(MAX_ENGINE_INT) / SCALE  # exact: 900719925474.0992

FACT_TYPES = frozenset({"decimal", "int", "bool", "string", "date"})
# Lists of dates (holiday calendars) are parameters for Python derivations only.
PARAMETER_TYPES = FACT_TYPES | {"date_list"}
ORDERED_TYPES = frozenset({"decimal", "int", "date"})


@dataclass(frozen=True)
class Codec:
    """How values of one type are checked and encoded; resolved once per declared name."""

    coerce: Callable[[Any], Any]
    to_engine: Callable[[Any], Any]
    to_json: Callable[[Any], Any]


def coerce(value_type: str, value: Any) -> Any:
    """Return `value` as the Python type for `value_type`; raise ValueError naming the problem."""
    return codec(value_type).coerce(value)


def to_engine(value_type: str, value: Any) -> Any:
    """Encode a coerced value for the engine: never a float."""
    return codec(value_type).to_engine(value)


def to_json(value_type: str, value: Any) -> Any:
    """Encode a coerced value for a decision record: decimals as strings, dates ISO."""
    return codec(value_type).to_json(value)


def engine_member(name: str, engine_value: Any) -> str:
    """`"name":value` as `json.dumps` writes it: the host sends facts as JSON text built from
    these, which costs less than building a dict and encoding it (engine values are int, bool
    or str; names are identifiers, so they need no escaping)."""
    encode = _ENGINE_JSON.get(type(engine_value), json.dumps)
    return f'"{name}":{encode(engine_value)}'


def codec(value_type: str) -> Codec:
    try:
        return _CODECS[value_type]
    except KeyError:
        raise ValueError(f"unknown type {value_type!r}") from None


def render(value: Any) -> str:
    """Show an original value in a reason text."""
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _decimal(value: Any) -> Decimal:
    if type(value) is Decimal:  # derived facts and stored parameters: no conversion needed
        number = value
    elif isinstance(value, bool):
        raise ValueError(f"expected a decimal, got {value!r}")
    else:
        try:
            # str() of a float is its shortest round-trip form, i.e. what the sender typed.
            number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
        except (InvalidOperation, TypeError, ValueError):
            raise ValueError(f"expected a decimal, got {value!r}") from None
    if not number.is_finite():
        raise ValueError(f"expected a finite decimal, got {value!r}")
    # Same bound as the scaled integer's, compared without scaling.
    if abs(number) >= _MAX_ENGINE_DECIMAL:
        raise _out_of_engine_range()
    return number


def _int(value: Any) -> int:
    if type(value) is not int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ValueError(f"expected an integer, got {value!r}")
    if abs(value) >= MAX_ENGINE_INT:
        raise _out_of_engine_range()
    return value


def _bool(value: Any) -> bool:
    if value is not True and value is not False:
        raise ValueError(f"expected true or false, got {value!r}")
    return value


def _string(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"expected a string, got {value!r}")
    return value


def _date(value: Any) -> date:
    if type(value) is date:
        return value
    if isinstance(value, date) and not hasattr(value, "hour"):
        return value
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise ValueError(f"expected an ISO date, got {value!r}")


def _date_list(value: Any) -> tuple[date, ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected a list of ISO dates, got {value!r}")
    return tuple(sorted(_date(item) for item in value))


def _out_of_engine_range() -> ValueError:
    return ValueError("value is too large for exact comparison in the rules engine")


def _scaled(value: Decimal) -> int:
    # Half-even to 4 decimals, then the integer count of ten-thousandths.
    return int(value.scaleb(_DECIMALS).to_integral_value(ROUND_HALF_EVEN))


def _same(value: Any) -> Any:
    return value


def _json_bool(value: bool) -> str:
    return "true" if value else "false"


_ENGINE_JSON: dict[type, Callable[[Any], str]] = {
    bool: _json_bool,
    int: int.__repr__,
    str: encode_basestring_ascii,  # what json.dumps uses by default
}

_CODECS = {
    "decimal": Codec(_decimal, _scaled, str),
    "int": Codec(_int, _same, _same),
    "bool": Codec(_bool, _same, _same),
    "string": Codec(_string, _same, _same),
    "date": Codec(_date, date.toordinal, date.isoformat),
    "date_list": Codec(
        _date_list,
        lambda dates: [item.toordinal() for item in dates],
        lambda dates: [item.isoformat() for item in dates],
    ),
}


def percent_ceiling(part: Decimal, whole: Decimal) -> Decimal:
    """`part` as a percentage of `whole`, rounded up to the engine's 4 decimals.

    Rounding up keeps "share > threshold" exact for any threshold with at most 4 decimals
    (every parameter is scaled to 4 decimals): x > t exactly when ceil4(x) > t.
    """
    part_numerator, part_denominator = part.as_integer_ratio()
    whole_numerator, whole_denominator = whole.as_integer_ratio()
    # Exact integer ceiling of part / whole * 100 * SCALE (cheaper than Fraction).
    scaled = -(
        (-part_numerator * whole_denominator * 100 * SCALE) // (part_denominator * whole_numerator)
    )
    return Decimal(scaled) / SCALE
