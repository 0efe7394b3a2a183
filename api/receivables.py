"""Open items from the ERP and payments against them (DESIGN §4 master data)."""

from __future__ import annotations

import re
from typing import Any

from flask import Blueprint, request
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.customers import date_field, money_field
from api.errors import BadRequest
from api.requests import field, json_body, page_args, refused, runtime, text_field
from domain import sales
from domain.customers import Customer, CustomerNotFound, get_customer
from engine.errors import Conflict, NotFound

bp = Blueprint("receivables", __name__, url_prefix="/api/v1/receivables")

ISO_4217 = re.compile(r"[A-Z]{3}")
# The widths of the columns the ERP's texts go into (domain/sales.py).
MAX_ORDER_NO = 64
MAX_REFERENCE = 120


@bp.post("")
def create_receivable():
    body = json_body()
    document_no = field(body, "document_no", str)
    customer_id = field(body, "customer_id", str)
    amount = money_field(body, "amount")
    open_amount = money_field(body, "open_amount", required=False)
    doc_date = date_field(body, "doc_date")
    due_date = date_field(body, "due_date")
    order_no = text_field(body, "order_no", MAX_ORDER_NO, required=False)
    if not 0 < len(document_no) <= 64:
        raise BadRequest(
            "'document_no' is 1 to 64 characters",
            [{"field": "document_no", "message": "1 to 64 characters"}],
        )
    # Dunning and the overdue checks count from the due date; one before the document's own
    # date would make an item overdue the day it was issued.
    if due_date < doc_date:
        raise refused("due_date", "must not be before doc_date")
    with runtime().uow() as uow:
        try:
            customer = get_customer(uow.session, customer_id)
        except CustomerNotFound as exc:
            raise BadRequest(
                str(exc), [{"field": "customer_id", "message": "unknown customer"}]
            ) from None
        currency = _currency(body, customer)
        if order_no is not None:
            _not_a_flowgate_order(uow.session, order_no)
        try:
            row = sales.add_receivable(
                uow.session,
                document_no=document_no,
                customer_id=customer.id,
                currency=currency,
                amount=amount,
                open_amount=open_amount,
                doc_date=doc_date,
                due_date=due_date,
                order_no=order_no,
                source="erp",
            )
        except sales.SalesError as exc:
            raise Conflict(str(exc)) from None
        result = sales.receivable_as_dict(row)
        uow.commit()
    return result, 201


def _currency(body: dict[str, Any], customer: Customer) -> str:
    """The customer's currency, whether or not the body names it: exposure counts only the
    open items in the customer's currency (domain.sales.open_exposure), so an item in another
    would escape every credit check."""
    currency = field(body, "currency", str, required=False)
    if currency is None:
        return customer.currency
    if not ISO_4217.fullmatch(currency):
        raise refused("currency", "must be a three-letter ISO 4217 code such as CNY")
    if currency != customer.currency:
        raise refused("currency", f"must be the customer's currency, {customer.currency}")
    return currency


def _not_a_flowgate_order(session: Session, order_no: str) -> None:
    """An order an O2C process owns is invoiced by that process (a `flowgate` receivable); an
    ERP item carrying its number would be counted twice in the customer's exposure, and is
    neither the process's to collect nor to cancel with the order."""
    order = session.get(sales.SalesOrder, order_no)
    if order is not None and order.instance_id is not None:
        raise refused(
            "order_no",
            f"is processed by order-to-cash instance {order.instance_id}, which invoices it",
        )


def _reference(body: dict[str, Any], default: str) -> str:
    # A blank reference is no reference: "   " was stored as the booking's key.
    return (text_field(body, "reference", MAX_REFERENCE, required=False) or "").strip() or default


def _same_document(
    row: sales.Payment | sales.WriteOff, item: sales.Receivable, sent: dict[str, Any]
) -> None:
    """A reference already booked answers with its first booking only when it is that document
    again; with another amount or content it is a different document, refused rather than
    silently dropped."""
    differing = [name for name, value in sent.items() if getattr(row, name) != value]
    if row.receivable_id != item.id:
        differing.insert(0, "document_no")
    if differing:
        message = f"is already booked with another {', '.join(differing)}"
        raise Conflict(
            f"reference {row.reference} {message}", [{"field": "reference", "message": message}]
        )


@bp.post("/<document_no>/payments")
def add_payment(document_no: str):
    body = json_body()
    amount = money_field(body, "amount")
    paid_on = date_field(body, "paid_on")
    reference = _reference(body, f"{document_no}:{paid_on}:{amount}")
    with runtime().uow() as uow:
        item = _erp_item(uow.session, document_no, "receive the payment")
        try:
            payment, new = sales.apply_payment(uow.session, document_no, amount, paid_on, reference)
        except sales.SalesError as exc:
            raise BadRequest(str(exc), [{"field": "amount", "message": str(exc)}]) from None
        if not new:
            _same_document(payment, item, {"amount": amount, "paid_on": paid_on})
        result = {"reference": payment.reference, "receivable": sales.receivable_as_dict(item)}
        uow.commit()
    return result, 201 if new else 200


@bp.post("/<document_no>/write-offs")
def add_write_off(document_no: str):
    """Bad debt the ERP wrote off: it lowers the open amount and counts in the credit score."""
    body = json_body()
    amount = money_field(body, "amount")
    written_off_on = date_field(body, "written_off_on")
    reason = text_field(body, "reason", 400)  # not blank: "   " was booked as a reason
    reference = _reference(body, f"{document_no}:w:{written_off_on}")
    with runtime().uow() as uow:
        item = _erp_item(uow.session, document_no, "write it off")
        try:
            row, new = sales.write_off(
                uow.session, document_no, amount, written_off_on, reason, reference
            )
        except sales.SalesError as exc:
            raise BadRequest(str(exc), [{"field": "amount", "message": str(exc)}]) from None
        if not new:
            sent = {"amount": amount, "written_off_on": written_off_on, "reason": reason}
            _same_document(row, item, sent)
        result = {"reference": row.reference, "receivable": sales.receivable_as_dict(item)}
        uow.commit()
    return result, 201 if new else 200


def _erp_item(session: Session, document_no: str, action: str) -> sales.Receivable:
    try:
        item = sales.get_receivable(session, document_no)
    except sales.SalesError as exc:
        raise NotFound(str(exc)) from None
    if item.source == "flowgate":
        # Its order's process collects it and posts what happens to it.
        raise Conflict(
            f"{document_no} is a flowgate invoice: its order's process must {action}"
            " (send a payment_received message to pay it)"
        )
    return item


@bp.get("")
def list_receivables():
    page, size = page_args()
    stmt = select(sales.Receivable).order_by(sales.Receivable.id)
    for name in ("customer_id", "status", "order_no"):
        value = request.args.get(name)
        if value:
            stmt = stmt.where(getattr(sales.Receivable, name) == value)
    with runtime().uow(write=False) as uow:
        rows = uow.session.scalars(stmt.offset((page - 1) * size).limit(size))
        return {"items": [sales.receivable_as_dict(r) for r in rows], "page": page}
