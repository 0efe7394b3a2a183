"""Customer master data from the ERP and the credit view (DESIGN §4, DOMAIN §1).

The field parsers here are shared by the other O2C blueprints (receivables, lots): a value of
the wrong type or form is a 400 naming its field; one well-formed but not acceptable (a blank
name, a due date before the document's) is a 422 naming it; never a 500.
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint, current_app

from api.errors import BadRequest
from api.requests import field, json_body, refused, runtime, text_field
from domain.customers import (
    Customer,
    CustomerNotFound,
    credit_summary,
    customer_as_dict,
    get_customer,
    upsert_customer,
)
from domain.errors import InvalidInput
from domain.fields import MAX_AMOUNT, MAX_INT, PLAIN_DECIMAL, date_at
from domain.sales import open_exposure
from engine.errors import NotFound
from engine.handlers.o2c import gather_credit

bp = Blueprint("customers", __name__, url_prefix="/api/v1/customers")

GRADES = ("A", "B", "C", "D", "N")
# Digits with an optional sign and point: Decimal also reads "1E+2", "1_000" and " 12 ", and
# such an amount was stored and shown back as the ERP wrote it.
MAX_NAME = 200  # customer.name's width


def _bad(name: str, message: str) -> BadRequest:
    return BadRequest(f"'{name}' {message}", [{"field": name, "message": message}])


def money_field(body: dict[str, Any], name: str, required: bool = True) -> Decimal | None:
    """A decimal amount given as a string (or an integer); floats lose cents, so never those."""
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(name, "is required")
        return None
    if (
        isinstance(value, bool | float)
        or not isinstance(value, str | int)
        or (isinstance(value, str) and not PLAIN_DECIMAL.fullmatch(value))
    ):
        raise _bad(name, 'must be a decimal string, e.g. "1200.00"')
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise _bad(name, 'must be a decimal string, e.g. "1200.00"') from None
    if amount.is_finite() and abs(amount) >= MAX_AMOUNT:
        # Past Decimal's 28 digits at the cent the check below could not even be made.
        raise _bad(name, f"must be less than {MAX_AMOUNT:,.0f}")
    if not amount.is_finite() or amount < 0 or amount != amount.quantize(Decimal("0.01")):
        raise _bad(name, "must be a non-negative amount with at most two decimals")
    return amount


def date_field(body: dict[str, Any], name: str, required: bool = True) -> date | None:
    value = body.get(name)
    if value is None:
        if required:
            raise _bad(name, "is required")
        return None
    if not isinstance(value, str):
        raise _bad(name, "must be an ISO date (YYYY-MM-DD)")
    try:
        # The messages' rule, range included: years 0001 and 9999 were stored from here.
        return date_at(value, name)
    except InvalidInput as exc:
        raise _bad(name, exc.message) from None


def int_field(
    body: dict[str, Any], name: str, required: bool = False, most: int = MAX_INT
) -> int | None:
    value = field(body, name, int, required=required)
    if value is not None and value < 0:
        raise _bad(name, "must not be negative")
    if value is not None and value > most:
        raise _bad(name, f"must be at most {most}")
    return value


def _customer_values(body: dict[str, Any]) -> dict[str, Any]:
    values: dict[str, Any] = {"name": text_field(body, "name", MAX_NAME)}
    currency = field(body, "currency", str, required=False)
    if currency is not None:
        # ASCII letters only: str.isalpha() also took "ÄÖÜ" and "日本語".
        if not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise _bad("currency", "must be an ISO 4217 code")
        values["currency"] = currency.upper()
    values["credit_limit"] = money_field(body, "credit_limit")
    # Days are bounded to ten years: a due date a billion days out overflowed at invoicing.
    # Terms are required once given (null would blank a required column); a null minimum
    # shelf life falls back to the default.
    for name, required in (("payment_terms_days", True), ("min_shelf_life_days", False)):
        if name in body:
            values[name] = int_field(body, name, required=required, most=3650)
    if "score" in body:
        values["score"] = int_field(body, "score")
    if "blocked" in body:
        values["blocked"] = field(body, "blocked", bool)
    for name in ("license_expires_on", "next_review_on"):
        if name in body:
            values[name] = date_field(body, name, required=False)
    if "grade" in body:
        grade = field(body, "grade", str)
        if grade not in GRADES:
            raise _bad("grade", f"must be one of {', '.join(GRADES)}")
        values["grade"] = grade
    return values


def _customer(session: Any, customer_id: str) -> Any:
    try:
        return get_customer(session, customer_id)
    except CustomerNotFound as exc:
        raise NotFound(str(exc)) from None


def _still_open_in(session: Any, customer: Customer) -> None:
    """Refuse a new currency while the old one has open business: exposure is summed in the
    customer's currency, so the open items would drop out of it and an order over the limit
    would pass unchecked."""
    exposure = open_exposure(session, customer.id, customer.currency, None)
    if (
        exposure.open_orders
        or exposure.open_deliveries
        or exposure.invoiced_unposted
        or (exposure.open_items)
    ):
        raise refused(
            "currency",
            f"cannot change while orders or items in {customer.currency} are open",
        )


@bp.put("/<customer_id>")
def put_customer(customer_id: str):
    if len(customer_id) > 64:
        raise _bad("id", "must be at most 64 characters")
    values = _customer_values(json_body())
    with runtime().uow() as uow:
        existing = uow.session.get(Customer, customer_id)
        created = existing is None
        if existing is not None and values.get("currency", existing.currency) != existing.currency:
            _still_open_in(uow.session, existing)
        row = upsert_customer(uow.session, customer_id, values)
        body = customer_as_dict(row)
        uow.commit()
    return body, 201 if created else 200


@bp.get("/<customer_id>")
def get_customer_view(customer_id: str):
    with runtime().uow(write=False) as uow:
        return customer_as_dict(_customer(uow.session, customer_id))


@bp.get("/<customer_id>/credit")
def get_credit(customer_id: str):
    rules = current_app.extensions["flowgate"].runtime.rules.rules
    as_of = runtime().clock().date()
    with runtime().uow(write=False) as uow:
        customer = _customer(uow.session, customer_id)
        facts = gather_credit(uow.session, rules, customer, Decimal("0.00"), as_of)
        return credit_summary(uow.session, customer, facts, as_of)
