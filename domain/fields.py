"""Fields of what the ERP sends (start variables, message payloads), read by the domain.

A field that cannot be read raises InvalidInput naming it as the sender wrote it
(`vendor_invoice.lines[0].unit_price`). While that start or message runs, the engine refuses
it with a 422 and keeps nothing of it (engine/runtime/execution.py), so the sender can correct
and resend it; no retry of the same data could ever succeed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from domain.errors import InvalidInput
from rules.udi import is_valid_gtin

# Beyond these a value is a typo or an attack, refused by name. Amounts reach the rules engine,
# which compares decimals exactly only below 9 x 10^11 (rules/values.py): a credit limit of
# 10^15 was accepted and then made every order of its customer an incident; 10^11 leaves room
# for exposure summed over many documents. Integers past 2^31 - 1 overflow PostgreSQL's columns.
MAX_AMOUNT = Decimal("1e11")
MAX_INT = 2**31 - 1
# Business dates (orders, shipments, invoices, expiries) fall well inside these.
EARLIEST, LATEST = date(1900, 1, 1), date(2199, 12, 31)
_ISO_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
# A decimal as the ERP writes one: ASCII digits and one point. Python's Decimal also reads
# "1_000", "1E+3", " 12.00" and full-width digits, which an ERP never means as an amount.
PLAIN_DECIMAL = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")


def decimal_at(value: Any, field: str) -> Decimal:
    # Floats are refused: money arrives as a decimal string (STYLE: money is Decimal).
    if (
        isinstance(value, bool | float)
        or not isinstance(value, str | int | Decimal)  # a Decimal: a value the process kept
        or (isinstance(value, str) and not PLAIN_DECIMAL.fullmatch(value))
    ):
        raise InvalidInput(field, "must be a decimal string")
    try:
        number = Decimal(str(value))
    except ArithmeticError:
        raise InvalidInput(field, "must be a decimal string") from None
    if not number.is_finite():
        raise InvalidInput(field, "must be a finite decimal")
    if abs(number) >= MAX_AMOUNT:
        raise InvalidInput(field, f"must be less than {MAX_AMOUNT:,.0f} in size")
    return number


def unit_price_at(value: Any, field: str) -> Decimal:
    """A unit price: not negative, at most 4 decimals (domain.types.UnitPrice stores 4; a
    fifth would be rounded away without a word)."""
    price = decimal_at(value, field)
    if price < 0:
        raise InvalidInput(field, "must not be negative")
    if price != price.quantize(Decimal("0.0001")):
        raise InvalidInput(field, "has more than 4 decimal places")
    return price


def date_at(value: Any, field: str, default: date | None = None) -> date:
    if value in (None, "") and default is not None:
        return default
    if isinstance(value, date) and not isinstance(value, datetime):
        parsed = value  # kept as a date in the process data (engine/runtime/state.py)
    elif isinstance(value, str) and _ISO_DATE.fullmatch(value):
        try:
            parsed = date.fromisoformat(value)
        except ValueError:
            raise InvalidInput(field, "must be an ISO date (YYYY-MM-DD)") from None
    else:
        # Not a number (20261123), nor the compact or week forms Python also reads.
        raise InvalidInput(field, "must be an ISO date (YYYY-MM-DD)")
    if not EARLIEST <= parsed <= LATEST:
        # 9999-12-31 passed, then overflowed a step that adds a shelf life or payment terms.
        raise InvalidInput(field, f"must be from {EARLIEST} to {LATEST}")
    return parsed


def int_at(value: Any, field: str) -> int:
    if isinstance(value, bool | float):
        raise InvalidInput(field, "must be a whole number")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise InvalidInput(field, "must be a whole number") from None
    if abs(number) > MAX_INT:
        raise InvalidInput(field, f"must be at most {MAX_INT} in size")
    return number


def positive_int_at(value: Any, field: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise InvalidInput(field, "must be a positive integer")
    if value > MAX_INT:
        raise InvalidInput(field, f"must be at most {MAX_INT}")
    return value


def text_at(payload: dict[str, Any], name: str, field: str) -> str:
    value = payload.get(name)
    if not isinstance(value, str) or not value.strip():
        raise InvalidInput(field, "is required")
    return value


def optional_text_at(payload: dict[str, Any], name: str, field: str, limit: int) -> str | None:
    value = payload.get(name)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > limit:
        raise InvalidInput(field, f"must be text of at most {limit} characters")
    return value


def gtin_at(value: str, field: str) -> str:
    """The GTIN as stored: 14 digits, left-padded (DOMAIN §3), so that a GTIN-13 on an order
    and the GTIN-14 of its UDI and lot master name one product in every record and query."""
    # Caught where the document arrives, not at the shipment or receipt check (an incident).
    if not is_valid_gtin(value):
        raise InvalidInput(field, "must be a GTIN-8, 12, 13 or 14 with its check digit")
    return value.zfill(14)


def tax_rate_at(value: Any, field: str) -> Decimal:
    """A tax rate is a fraction ("0.13"); a negative one made a negative order that sailed
    through every check."""
    rate = decimal_at(value, field)
    if not 0 <= rate < 1:
        raise InvalidInput(field, "must be a fraction from 0 up to 1")
    return rate


def cents_at(value: Any, field: str) -> Decimal:
    """A payment's amount: a decimal string of whole cents, more than zero. A negative or NaN
    one was booked as paid, `1e30` released an unpaid order, and an overpayment of a vendor
    invoice posted a negative discount."""
    amount = decimal_at(value, field)
    if amount <= 0:
        raise InvalidInput(field, "must be more than zero")
    if amount != amount.quantize(Decimal("0.01")):
        raise InvalidInput(field, "must be in whole cents")
    return amount


def numbered_lines(
    lines: Any, prefix: str, also: tuple[str, ...] = ()
) -> Iterator[tuple[str, dict[str, Any]]]:
    """Each line with where it is (`order.lines[0]`), once the list and its positive line
    numbers are checked; a line number (with the `also` fields: a receipt line per lot) may
    appear once. A repeat had hit the database's unique key inside a step: an incident."""
    if not isinstance(lines, list) or not lines:
        raise InvalidInput(prefix, "must be a non-empty list of lines")
    seen: set[tuple[Any, ...]] = set()
    for index, line in enumerate(lines):
        where = f"{prefix}[{index}]"
        if not isinstance(line, dict):
            raise InvalidInput(where, "must be an object")
        number = positive_int_at(line.get("line_no"), f"{where}.line_no")
        key = (number, *(str(line.get(name)) for name in also))
        if key in seen:
            raise InvalidInput(f"{where}.line_no", f"line {number} appears twice")
        seen.add(key)
        yield where, line
