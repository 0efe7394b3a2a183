"""Procure-to-pay records (DOMAIN §4): suppliers, requisitions and their approvals, purchase
orders, goods receipts with lots, vendor invoices and payment blocks.

Functions take the caller's session and flush, never commit, so they join the engine command's
transaction. Thresholds are not here: they live in the rulesets (`rules/procurement.py`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    Date,
    ForeignKey,
    Index,
    String,
    UniqueConstraint,
    and_,
    bindparam,
    func,
    or_,
    select,
)
from sqlalchemy.orm import Mapped, Session, mapped_column

from domain.errors import InvalidInput
from domain.fields import (
    MAX_AMOUNT,
    gtin_at,
    int_at,
    numbered_lines,
    optional_text_at,
    positive_int_at,
    tax_rate_at,
    unit_price_at,
)
from domain.records import DomainBase, for_update, locks_rows
from domain.types import BigId, UnitPrice, utcnow

ZERO = Decimal("0.00")


class ProcurementError(InvalidInput):
    """Input the P2P records cannot accept; `field` names what is wrong."""


class RequisitionTaken(ProcurementError):
    """A requisition number or PO number another process already has. Refused with the start
    itself, not by the model's rejection: a `requisition.rejected` under that same number would
    read to the ERP as the first requisition's rejection."""


# --- tables ---------------------------------------------------------------------------------


class Supplier(DomainBase):
    __tablename__ = "supplier"
    __audited__ = True

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    blocked: Mapped[bool] = mapped_column(default=False)
    bank_account_trusted: Mapped[bool] = mapped_column(default=False)
    # Who last changed the bank details: they may never release a payment to this supplier.
    bank_details_edited_by: Mapped[str | None] = mapped_column(String(200))
    net_days: Mapped[int] = mapped_column(default=30)
    discount_pct: Mapped[Decimal] = mapped_column(default=ZERO)
    discount_days: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class Requisition(DomainBase):
    __tablename__ = "requisition"
    __audited__ = True

    req_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str | None] = mapped_column(String(32), index=True)
    requester: Mapped[str] = mapped_column(String(200))
    cost_center: Mapped[str | None] = mapped_column(String(32))
    category: Mapped[str] = mapped_column(String(40))
    supplier_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    status: Mapped[str] = mapped_column(String(20), default="pending")
    approval_chain: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RequisitionApproval(DomainBase):
    """One step of the approval chain as it was decided: who, for which group, and how."""

    __tablename__ = "requisition_approval"
    __audited__ = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    req_no: Mapped[str] = mapped_column(ForeignKey("requisition.req_no"), index=True)
    step: Mapped[int]
    approver_group: Mapped[str] = mapped_column(String(64))
    approver: Mapped[str] = mapped_column(String(200))
    decision: Mapped[str] = mapped_column(String(10))
    comment: Mapped[str] = mapped_column(String(400), default="")
    decided_at: Mapped[datetime] = mapped_column(default=utcnow)


class PurchaseOrder(DomainBase):
    __tablename__ = "purchase_order"
    __audited__ = True

    po_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    req_no: Mapped[str] = mapped_column(ForeignKey("requisition.req_no"))
    instance_id: Mapped[str | None] = mapped_column(String(32), index=True)
    supplier_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    cost_center: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="open")
    min_shelf_life_days: Mapped[int]
    issued_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The ERP's own number for this PO, when it answered `po.issued` with one.
    erp_po_no: Mapped[str | None] = mapped_column(String(64), default=None)


class PurchaseOrderLine(DomainBase):
    __tablename__ = "purchase_order_line"
    __table_args__ = (UniqueConstraint("po_no", "line_no", name="uq_po_line"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    po_no: Mapped[str] = mapped_column(ForeignKey("purchase_order.po_no"))
    line_no: Mapped[int]
    sku: Mapped[str | None] = mapped_column(String(64))
    gtin: Mapped[str | None] = mapped_column(String(14))
    qty: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(UnitPrice)
    tax_rate: Mapped[Decimal] = mapped_column(UnitPrice, default=ZERO)


class GoodsReceiptLine(DomainBase):
    """One received lot of one PO line. `status`: quarantined, released, returned, rejected."""

    __tablename__ = "goods_receipt_line"
    __audited__ = True
    __table_args__ = (
        UniqueConstraint("po_no", "receipt_no", "line_no", "lot", name="uq_receipt_lot"),
        Index("ix_receipt_po", "po_no", "line_no"),
        # Whether other receipts of a lot still wait for inspection (engine/handlers/p2p.py).
        Index("ix_receipt_lot_status", "gtin", "lot", "status"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    po_no: Mapped[str] = mapped_column(ForeignKey("purchase_order.po_no"))
    receipt_no: Mapped[str] = mapped_column(String(64))
    line_no: Mapped[int]
    gtin: Mapped[str] = mapped_column(String(14))
    lot: Mapped[str] = mapped_column(String(64))
    expiry_date: Mapped[date] = mapped_column(Date)
    udi: Mapped[str | None] = mapped_column(String(200))
    qty: Mapped[int]
    unit_cost: Mapped[Decimal] = mapped_column(UnitPrice)
    status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(400), default="")
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    inspected_by: Mapped[str | None] = mapped_column(String(200))


class VendorInvoice(DomainBase):
    """`status`: duplicate_hold, posted, blocked, released, rejected, superseded, paid."""

    __tablename__ = "vendor_invoice"
    __audited__ = True
    __table_args__ = (
        Index("ix_vendor_invoice_number", "supplier_id", "normalised_no"),
        Index("ix_vendor_invoice_amount", "supplier_id", "gross_total", "currency"),
        Index("ix_vendor_invoice_po", "po_no"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    po_no: Mapped[str] = mapped_column(ForeignKey("purchase_order.po_no"))
    supplier_id: Mapped[str] = mapped_column(String(64))
    invoice_no: Mapped[str] = mapped_column(String(64))
    normalised_no: Mapped[str] = mapped_column(String(64))
    invoice_date: Mapped[date] = mapped_column(Date)
    currency: Mapped[str] = mapped_column(String(3))
    net_total: Mapped[Decimal]
    tax_amount: Mapped[Decimal]
    gross_total: Mapped[Decimal]
    entered_by: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    journal_entry_id: Mapped[int | None] = mapped_column(BigId)
    instance_id: Mapped[str | None] = mapped_column(String(32), index=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VendorInvoiceLine(DomainBase):
    __tablename__ = "vendor_invoice_line"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("vendor_invoice.id"), index=True)
    line_no: Mapped[int]
    qty: Mapped[int]
    unit_price: Mapped[Decimal] = mapped_column(UnitPrice)


class PaymentBlock(DomainBase):
    """A reason an invoice must not be paid; payment runs only when none is open."""

    __tablename__ = "payment_block"
    __audited__ = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("vendor_invoice.id"), index=True)
    reason: Mapped[str] = mapped_column(String(400))
    set_at: Mapped[datetime] = mapped_column(default=utcnow)
    released_at: Mapped[datetime | None] = mapped_column()
    released_by: Mapped[str | None] = mapped_column(String(200))
    release_reason: Mapped[str | None] = mapped_column(String(400))


# --- suppliers ------------------------------------------------------------------------------


def upsert_supplier(
    session: Session,
    supplier_id: str,
    *,
    name: str,
    blocked: bool,
    bank_account_trusted: bool,
    edited_by: str,
    terms: tuple[int, Decimal, int] | None = None,
) -> Supplier:
    """Master data from the ERP. A change of trust in the bank account records who made it."""
    row = session.get(Supplier, supplier_id)
    if row is None:
        row = Supplier(id=supplier_id, name=name)
        session.add(row)
    if row.bank_account_trusted != bank_account_trusted or row.bank_details_edited_by is None:
        row.bank_details_edited_by = edited_by
    row.name = name
    row.blocked = blocked
    row.bank_account_trusted = bank_account_trusted
    if terms is not None:
        row.net_days, row.discount_pct, row.discount_days = terms
    session.flush()
    return row


def require_supplier(session: Session, supplier_id: str) -> Supplier:
    row = session.get(Supplier, supplier_id)
    if row is None:
        raise ProcurementError("supplier_id", f"supplier {supplier_id} is unknown; PUT it first")
    return row


def supplier_as_dict(row: Supplier) -> dict[str, Any]:
    return {
        "id": row.id,
        "name": row.name,
        "blocked": row.blocked,
        "bank_account_trusted": row.bank_account_trusted,
        "payment_terms": {
            "net_days": row.net_days,
            "discount_pct": str(row.discount_pct),
            "discount_days": row.discount_days,
        },
    }


# --- requisitions and purchase orders -------------------------------------------------------


@dataclass(frozen=True)
class RequisitionLine:
    line_no: int
    sku: str | None
    gtin: str | None
    qty: int
    unit_price: Decimal
    tax_rate: Decimal = ZERO

    @property
    def net_amount(self) -> Decimal:
        return self.unit_price * self.qty


def parse_requisition_lines(raw: Any, prefix: str = "requisition.lines") -> list[RequisitionLine]:
    if not isinstance(raw, list) or not raw:
        raise ProcurementError(prefix, "must be a non-empty list")
    lines = []
    for index, item in enumerate(raw):
        where = f"{prefix}[{index}]"
        if not isinstance(item, dict):
            raise ProcurementError(where, "must be an object")
        price = unit_price_at(item.get("unit_price"), f"{where}.unit_price")
        gtin = optional_text_at(item, "gtin", f"{where}.gtin", 14)
        if gtin is not None:
            gtin = gtin_at(gtin, f"{where}.gtin")
        lines.append(
            RequisitionLine(
                line_no=positive_int_at(item.get("line_no"), f"{where}.line_no"),
                sku=optional_text_at(item, "sku", f"{where}.sku", 64),
                gtin=gtin,
                qty=positive_int_at(item.get("qty"), f"{where}.qty"),
                unit_price=price,
                tax_rate=tax_rate_at(item.get("tax_rate", "0"), f"{where}.tax_rate"),
            )
        )
    if len({line.line_no for line in lines}) != len(lines):
        raise ProcurementError(prefix, "line numbers must be unique")
    if sum((line.net_amount for line in lines), ZERO) >= MAX_AMOUNT:
        # As for an order (domain.sales): past this the approval chain cannot compare it
        # exactly, and the requisition went to an incident instead of back to the ERP.
        raise ProcurementError(prefix, f"must total less than {MAX_AMOUNT:,.0f}")
    return lines


def validate_requisition(payload: Any) -> list[RequisitionLine]:
    """The requisition's lines, or ProcurementError naming the first bad field."""
    if not isinstance(payload, dict):
        raise ProcurementError("requisition", "must be an object")
    for name in ("req_no", "requester", "supplier_id", "currency"):
        if not isinstance(payload.get(name), str) or not payload[name].strip():
            raise ProcurementError(f"requisition.{name}", "is required")
    if len(payload["req_no"]) > 60:  # "PO-" + the number must fit a PO number
        raise ProcurementError("requisition.req_no", "must be at most 60 characters")
    optional_text_at(payload, "cost_center", "requisition.cost_center", 64)
    optional_text_at(payload, "po_no", "requisition.po_no", 64)
    if payload.get("min_shelf_life_days") is not None:
        days = int_at(payload["min_shelf_life_days"], "requisition.min_shelf_life_days")
        if not 0 <= days <= 36_500:
            raise ProcurementError("requisition.min_shelf_life_days", "must be 0 to 36500 days")
    return parse_requisition_lines(payload.get("lines"))


def check_requisition(
    session: Session, payload: Any, instance_id: str
) -> tuple[Requisition | None, list[RequisitionLine]]:
    """The requisition's lines and its stored row (the same instance's, on a retry), or
    ProcurementError naming the field: bad data, or a number another process already has."""
    lines = validate_requisition(payload)
    existing = session.get(Requisition, payload["req_no"])
    if existing is not None and existing.instance_id != instance_id:
        # A second process for one requisition would issue (and pay) its PO twice.
        raise RequisitionTaken(
            "requisition.req_no", f"is already being processed by instance {existing.instance_id}"
        )
    po_no = payload.get("po_no")
    taken = session.get(PurchaseOrder, po_no) if po_no and existing is None else None
    if taken is not None:
        raise RequisitionTaken(
            "requisition.po_no", f"is already the PO of requisition {taken.req_no}"
        )
    return existing, lines


def register_requisition(
    session: Session, payload: Any, *, instance_id: str, now: datetime
) -> tuple[Requisition, list[RequisitionLine]]:
    """Store the requisition the ERP sent; the same instance again returns the stored one."""
    existing, lines = check_requisition(session, payload, instance_id)
    if existing is not None:
        return existing, lines
    row = Requisition(
        req_no=payload["req_no"],
        instance_id=instance_id,
        requester=payload["requester"],
        cost_center=payload.get("cost_center"),
        category=str(payload.get("category") or "general"),
        supplier_id=payload["supplier_id"],
        currency=payload["currency"],
        amount=sum((line.net_amount for line in lines), ZERO),
        status="pending",
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row, lines


def record_approval(
    session: Session,
    req_no: str,
    *,
    step: int,
    approver_group: str,
    approver: str,
    decision: str,
    comment: str,
    at: datetime,
) -> RequisitionApproval:
    row = RequisitionApproval(
        req_no=req_no,
        step=step,
        approver_group=approver_group,
        approver=approver,
        decision=decision,
        comment=comment[:400],
        decided_at=at,
    )
    session.add(row)
    session.flush()
    return row


def approvers_so_far(session: Session, req_no: str) -> list[str]:
    return list(
        session.scalars(
            select(RequisitionApproval.approver)
            .where(RequisitionApproval.req_no == req_no)
            .order_by(RequisitionApproval.step)
        )
    )


def issue_purchase_order(
    session: Session,
    requisition: Requisition,
    lines: Iterable[RequisitionLine],
    *,
    po_no: str,
    min_shelf_life_days: int,
    now: datetime,
) -> PurchaseOrder:
    existing = session.get(PurchaseOrder, po_no)
    if existing is not None and existing.req_no != requisition.req_no:
        raise ProcurementError(
            "requisition.po_no", f"is already the PO of requisition {existing.req_no}"
        )
    if existing is not None:
        return existing
    po = PurchaseOrder(
        po_no=po_no,
        req_no=requisition.req_no,
        instance_id=requisition.instance_id,
        supplier_id=requisition.supplier_id,
        currency=requisition.currency,
        cost_center=requisition.cost_center,
        status="open",
        min_shelf_life_days=min_shelf_life_days,
        issued_at=now,
    )
    session.add(po)
    session.flush()
    session.add_all(
        PurchaseOrderLine(
            po_no=po_no,
            line_no=line.line_no,
            sku=line.sku,
            gtin=line.gtin,
            qty=line.qty,
            unit_price=line.unit_price,
            tax_rate=line.tax_rate,
        )
        for line in lines
    )
    requisition.status = "ordered"
    session.flush()
    return po


def require_po(session: Session, po_no: str) -> PurchaseOrder:
    row = session.get(PurchaseOrder, po_no)
    if row is None:
        raise ProcurementError("po_no", f"purchase order {po_no} does not exist")
    return row


def po_lines(session: Session, po_no: str) -> dict[int, PurchaseOrderLine]:
    rows = session.scalars(
        select(PurchaseOrderLine)
        .where(PurchaseOrderLine.po_no == po_no)
        .order_by(PurchaseOrderLine.line_no)
    )
    return {row.line_no: row for row in rows}


# --- goods receipts -------------------------------------------------------------------------

# A lot counts as received while it is in stock or waiting for QA; rejected and returned
# lots were sent back, so they neither fill the PO nor may be invoiced.
IN_STOCK = ("quarantined", "released")


def received_quantities(session: Session, po_no: str) -> dict[int, int]:
    rows = session.execute(
        select(GoodsReceiptLine.line_no, func.sum(GoodsReceiptLine.qty))
        .where(GoodsReceiptLine.po_no == po_no, GoodsReceiptLine.status.in_(IN_STOCK))
        .group_by(GoodsReceiptLine.line_no)
    )
    return {line_no: int(qty or 0) for line_no, qty in rows}


def fully_received(session: Session, po_no: str) -> bool:
    received = received_quantities(session, po_no)
    return all(received.get(n, 0) >= line.qty for n, line in po_lines(session, po_no).items())


def record_receipt_line(session: Session, **values: Any) -> GoodsReceiptLine:
    row = GoodsReceiptLine(**values)
    session.add(row)
    session.flush()
    return row


def receipt_line(session: Session, receipt_line_id: int) -> GoodsReceiptLine:
    row = session.get(GoodsReceiptLine, receipt_line_id)
    if row is None:
        raise ProcurementError("receipt_line_id", f"no goods receipt line {receipt_line_id}")
    return row


def others_await_inspection(session: Session, row: GoodsReceiptLine) -> bool:
    """Whether another receipt of the same lot is still in quarantine, waiting for QA."""
    stmt = select(GoodsReceiptLine.id).where(
        GoodsReceiptLine.gtin == row.gtin,
        GoodsReceiptLine.lot == row.lot,
        GoodsReceiptLine.status == "quarantined",
        GoodsReceiptLine.id != row.id,
    )
    return session.scalar(stmt.limit(1)) is not None


# --- vendor invoices ------------------------------------------------------------------------


_SUPPLIER_LOCKED = for_update(select(Supplier.id).where(Supplier.id == bindparam("supplier_id")))


def prior_invoices(session: Session, invoice: VendorInvoice) -> list[VendorInvoice]:
    """The supplier's other invoices that could make `invoice` a duplicate (DOMAIN §4): the
    same normalised number, or the same currency and gross amount, at any date. No fiscal-year
    filter; the day window for equal amounts is the ruleset's to judge.

    The supplier is locked first, until the command commits: two copies of one invoice sent
    at once, each to its own PO, would otherwise each find no earlier copy and both be paid.
    """
    if locks_rows(session):
        session.execute(_SUPPLIER_LOCKED, {"supplier_id": invoice.supplier_id})
    return list(
        session.scalars(
            select(VendorInvoice).where(
                VendorInvoice.supplier_id == invoice.supplier_id,
                VendorInvoice.id != invoice.id,
                or_(
                    VendorInvoice.normalised_no == invoice.normalised_no,
                    and_(
                        VendorInvoice.gross_total == invoice.gross_total,
                        VendorInvoice.currency == invoice.currency,
                    ),
                ),
            )
        )
    )


def parse_invoice_lines(
    raw: Any, po_lines: Mapping[int, PurchaseOrderLine], prefix: str = "vendor_invoice.lines"
) -> list[tuple[int, int, Decimal]]:
    """An invoice's `(line_no, qty, unit_price)`, or ProcurementError naming the first bad field.

    The three-way match compares each line's amount and its price variance against the PO in
    the rules engine, which is exact only below MAX_AMOUNT (domain.fields): a unit price of
    99,999,999,999 for 100 units was taken and left an incident at the match that no retry
    could fix. Each line, at its own price and at the PO's (the variance lies between the
    two), and all lines together stay below it.
    """
    lines, total = [], ZERO
    for where, line in numbered_lines(raw, prefix):
        qty = positive_int_at(line.get("qty"), f"{where}.qty")
        price = unit_price_at(line.get("unit_price"), f"{where}.unit_price")
        amount = price * qty
        if amount >= MAX_AMOUNT:
            raise ProcurementError(
                f"{where}.unit_price",
                f"times qty {qty} makes {amount:,}, which must be less than {MAX_AMOUNT:,.0f}",
            )
        ordered = po_lines.get(line["line_no"])
        if ordered is not None and ordered.unit_price * qty >= MAX_AMOUNT:
            raise ProcurementError(
                f"{where}.qty",
                f"at the PO price {ordered.unit_price} makes {ordered.unit_price * qty:,}, "
                f"which must be less than {MAX_AMOUNT:,.0f}",
            )
        total += amount
        lines.append((line["line_no"], qty, price))
    if total >= MAX_AMOUNT:
        raise ProcurementError(prefix, f"must total less than {MAX_AMOUNT:,.0f}")
    return lines


def register_invoice(
    session: Session,
    po: PurchaseOrder,
    *,
    invoice_no: str,
    normalised_no: str,
    invoice_date: date,
    lines: list[tuple[int, int, Decimal]],
    tax_amount: Decimal,
    gross_total: Decimal,
    entered_by: str | None,
    instance_id: str,
    now: datetime,
) -> VendorInvoice:
    row = VendorInvoice(
        po_no=po.po_no,
        supplier_id=po.supplier_id,
        invoice_no=invoice_no,
        normalised_no=normalised_no[:64],
        invoice_date=invoice_date,
        currency=po.currency,
        net_total=gross_total - tax_amount,
        tax_amount=tax_amount,
        gross_total=gross_total,
        entered_by=entered_by,
        status="registered",
        instance_id=instance_id,
        created_at=now,
    )
    session.add(row)
    session.flush()
    session.add_all(
        VendorInvoiceLine(invoice_id=row.id, line_no=n, qty=q, unit_price=p) for n, q, p in lines
    )
    session.flush()
    return row


def invoice_lines(session: Session, invoice_id: int) -> list[VendorInvoiceLine]:
    return list(
        session.scalars(
            select(VendorInvoiceLine)
            .where(VendorInvoiceLine.invoice_id == invoice_id)
            .order_by(VendorInvoiceLine.line_no)
        )
    )


def require_invoice(session: Session, invoice_id: int) -> VendorInvoice:
    row = session.get(VendorInvoice, invoice_id)
    if row is None:
        raise ProcurementError("invoice_id", f"no vendor invoice {invoice_id}")
    return row


def invoiced_quantities(
    session: Session, po_no: str, exclude_id: int | None = None
) -> dict[int, int]:
    """What the PO's still valid invoices billed per line, but for `exclude_id`'s."""
    where = [
        VendorInvoice.po_no == po_no,
        VendorInvoice.status.in_(("posted", "blocked", "released", "paid")),
    ]
    if exclude_id is not None:
        where.append(VendorInvoice.id != exclude_id)
    rows = session.execute(
        select(VendorInvoiceLine.line_no, func.sum(VendorInvoiceLine.qty))
        .join(VendorInvoice, VendorInvoice.id == VendorInvoiceLine.invoice_id)
        .where(*where)
        .group_by(VendorInvoiceLine.line_no)
    )
    return {line_no: int(qty or 0) for line_no, qty in rows}


def fully_invoiced(session: Session, po_no: str) -> bool:
    """Every PO line billed in full by the PO's valid invoices (paid ones included)."""
    billed = invoiced_quantities(session, po_no)
    return all(billed.get(n, 0) >= line.qty for n, line in po_lines(session, po_no).items())


# An invoice in one of these is still being matched, approved or paid.
UNSETTLED_INVOICE = ("duplicate_hold", "posted", "blocked", "released")


def close_short_problem(session: Session, po_no: str) -> str | None:
    """Why the PO cannot be closed short now, or None: an invoice still in progress would be
    orphaned, and a lot awaiting inspection would stay quarantined with no task to release it."""
    open_invoice = session.scalar(
        select(VendorInvoice.invoice_no).where(
            VendorInvoice.po_no == po_no, VendorInvoice.status.in_(UNSETTLED_INVOICE)
        )
    )
    if open_invoice is not None:
        return f"invoice {open_invoice} is still in progress"
    quarantined = session.scalar(
        select(GoodsReceiptLine.lot).where(
            GoodsReceiptLine.po_no == po_no, GoodsReceiptLine.status == "quarantined"
        )
    )
    if quarantined is not None:
        return f"lot {quarantined} awaits incoming inspection"
    return None


def set_payment_block(session: Session, invoice: VendorInvoice, reason: str, at: datetime) -> None:
    session.add(PaymentBlock(invoice_id=invoice.id, reason=reason[:400], set_at=at))
    invoice.status = "blocked"
    session.flush()


def open_blocks(session: Session, invoice_id: int) -> list[PaymentBlock]:
    return list(
        session.scalars(
            select(PaymentBlock).where(
                PaymentBlock.invoice_id == invoice_id, PaymentBlock.released_at.is_(None)
            )
        )
    )


def release_payment_blocks(
    session: Session, invoice: VendorInvoice, *, by: str, reason: str, at: datetime
) -> int:
    blocks = open_blocks(session, invoice.id)
    for block in blocks:
        block.released_at = at
        block.released_by = by
        block.release_reason = reason[:400]
    invoice.status = "released"
    session.flush()
    return len(blocks)


def invoice_as_dict(row: VendorInvoice) -> dict[str, Any]:
    return {
        "id": row.id,
        "po_no": row.po_no,
        "supplier_id": row.supplier_id,
        "invoice_no": row.invoice_no,
        "normalised_no": row.normalised_no,
        "invoice_date": row.invoice_date.isoformat(),
        "net_total": str(row.net_total),
        "tax_amount": str(row.tax_amount),
        "gross_total": str(row.gross_total),
        "status": row.status,
        "entered_by": row.entered_by,
    }


def po_line_as_dict(line: PurchaseOrderLine) -> dict[str, Any]:
    return {
        "line_no": line.line_no,
        "sku": line.sku,
        "gtin": line.gtin,
        "qty": line.qty,
        "unit_price": str(line.unit_price),
    }


def purchase_order_as_dict(session: Session, po: PurchaseOrder) -> dict[str, Any]:
    received = received_quantities(session, po.po_no)
    receipts = session.scalars(
        select(GoodsReceiptLine)
        .where(GoodsReceiptLine.po_no == po.po_no)
        .order_by(GoodsReceiptLine.id)
    )
    invoices = session.scalars(
        select(VendorInvoice).where(VendorInvoice.po_no == po.po_no).order_by(VendorInvoice.id)
    )
    return {
        "po_no": po.po_no,
        "req_no": po.req_no,
        "supplier_id": po.supplier_id,
        "currency": po.currency,
        "status": po.status,
        "min_shelf_life_days": po.min_shelf_life_days,
        "erp_po_no": po.erp_po_no,
        "lines": [
            {**po_line_as_dict(line), "qty_received": received.get(line.line_no, 0)}
            for line in po_lines(session, po.po_no).values()
        ],
        "receipts": [
            {
                "id": r.id,
                "receipt_no": r.receipt_no,
                "line_no": r.line_no,
                "gtin": r.gtin,
                "lot": r.lot,
                "expiry_date": r.expiry_date.isoformat(),
                "qty": r.qty,
                "status": r.status,
                "reason": r.reason,
            }
            for r in receipts
        ],
        "invoices": [invoice_as_dict(i) for i in invoices],
    }
