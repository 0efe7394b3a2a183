"""Procure-to-pay sync endpoints (DESIGN §4): supplier master data from the ERP, and read views
of purchase orders with their receipts and invoices."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from flask import Blueprint

from api.errors import BadRequest
from api.requests import actor, field, json_body, runtime, text_field
from domain import procurement as p2p
from engine.errors import NotFound
from engine.runtime.commands import canonical_key

suppliers_bp = Blueprint("suppliers", __name__, url_prefix="/api/v1/suppliers")
purchase_orders_bp = Blueprint("purchase_orders", __name__, url_prefix="/api/v1/purchase-orders")


def _bad(name: str, message: str) -> BadRequest:
    return BadRequest(f"'{name}' {message}", [{"field": name, "message": message}])


def _terms(body: dict[str, Any]) -> tuple[int, Decimal, int] | None:
    """`payment_terms: {net_days, discount_pct, discount_days}`, e.g. 2/10 net 30."""
    raw = body.get("payment_terms")
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise _bad("payment_terms", "must be an object")
    days = {}
    for name in ("net_days", "discount_days"):
        value = raw.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 3650:
            raise _bad(f"payment_terms.{name}", "must be a whole number of days")
        days[name] = value
    if days["net_days"] < 1:
        raise _bad("payment_terms.net_days", "must be at least 1")
    try:
        pct = Decimal(str(raw.get("discount_pct", "0")))
    except InvalidOperation:
        raise _bad("payment_terms.discount_pct", "must be a decimal string") from None
    # NaN first: comparing it raises rather than answering False.
    if (
        isinstance(raw.get("discount_pct"), float)
        or not pct.is_finite()
        or not Decimal(0) <= pct < Decimal(100)
    ):
        raise _bad("payment_terms.discount_pct", "must be a decimal string from 0 to under 100")
    if pct and days["discount_days"] >= days["net_days"]:
        raise _bad("payment_terms.discount_days", "must be fewer than net_days")
    return days["net_days"], pct, days["discount_days"]


@suppliers_bp.put("/<supplier_id>")
def put_supplier(supplier_id: str):
    """Create or update a supplier: `{name, blocked, bank_account_trusted, payment_terms?}`."""
    if len(supplier_id) > 64:
        raise _bad("supplier_id", "must be at most 64 characters")
    body = json_body()
    name = text_field(body, "name", 200)  # Supplier.name's width
    blocked = field(body, "blocked", bool)
    trusted = field(body, "bank_account_trusted", bool)
    terms = _terms(body)
    with runtime().uow() as uow:
        created = uow.session.get(p2p.Supplier, supplier_id) is None
        row = p2p.upsert_supplier(
            uow.session,
            supplier_id,
            name=name,
            blocked=blocked,
            bank_account_trusted=trusted,
            edited_by=actor().user,
            terms=terms,
        )
        result = p2p.supplier_as_dict(row)
        uow.commit()
    return result, 201 if created else 200


@suppliers_bp.get("/<supplier_id>")
def get_supplier(supplier_id: str):
    with runtime().uow(write=False) as uow:
        row = uow.session.get(p2p.Supplier, supplier_id)
        if row is None:
            raise NotFound(f"no supplier '{supplier_id}'")
        return p2p.supplier_as_dict(row)


@purchase_orders_bp.get("/<po_no>")
def get_purchase_order(po_no: str):
    """The PO with received quantities, each received lot and its status, and the invoices."""
    with runtime().uow(write=False) as uow:
        po = uow.session.get(p2p.PurchaseOrder, po_no)
        canonical = canonical_key(uow.session, po_no) if po is None else None
        if canonical is not None:  # the ERP may ask by its own number
            po = uow.session.get(p2p.PurchaseOrder, canonical)
        if po is None:
            raise NotFound(f"no purchase order '{po_no}'")
        return p2p.purchase_order_as_dict(uow.session, po)
