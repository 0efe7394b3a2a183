"""Order-to-cash records (DOMAIN §1, §2, §5): orders, hold releases, shipments with every UDI,
invoices, receivables and payments.

The process holds keys and small facts; the order document lives here. A sales order's status
tells which credit-exposure bucket it is in (DOMAIN §1):

- `released`, `shipment_hold`, `ship_requested`: an open order (approved, not yet shipped);
- `shipped`: an open delivery (not yet invoiced);
- an invoice with `posted` false: invoiced, not yet posted;
- receivables with an open amount: open items, net of partial payments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, bindparam, func, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from domain.errors import InvalidInput
from domain.fields import (
    MAX_AMOUNT,
    date_at,
    decimal_at,
    gtin_at,
    numbered_lines,
    positive_int_at,
    tax_rate_at,
    text_at,
)
from domain.records import DomainBase, for_update
from domain.types import BigId, utcnow

ZERO = Decimal("0.00")
CENT = Decimal("0.01")
OPEN_ORDER_STATUSES = ("released", "shipment_hold", "ship_requested")


class SalesError(ValueError):
    """A request that contradicts the records (over-payment, unknown document, ...)."""


class SalesOrder(DomainBase):
    __tablename__ = "sales_order"
    __table_args__ = (Index("ix_sales_order_customer_status", "customer_id", "status"),)

    order_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    status: Mapped[str] = mapped_column(String(20), default="entered")
    order_date: Mapped[date] = mapped_column(Date)
    requested_ship_date: Mapped[date] = mapped_column(Date)
    lines: Mapped[list[Any]] = mapped_column()
    net: Mapped[Decimal] = mapped_column(default=ZERO)
    tax: Mapped[Decimal] = mapped_column(default=ZERO)
    gross: Mapped[Decimal] = mapped_column(default=ZERO)
    # The value and date of the credit release, for the re-check before goods issue.
    released_value: Mapped[Decimal | None] = mapped_column()
    released_on: Mapped[date | None] = mapped_column(Date)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class HoldRelease(DomainBase):
    """A documented release of a credit or shipment hold: who, when, why, and what held it."""

    __tablename__ = "hold_release"
    __audited__ = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(String(64), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    line_no: Mapped[int | None] = mapped_column()
    decision_id: Mapped[int | None] = mapped_column()
    rule_ids: Mapped[list[Any]] = mapped_column(default=list)
    ruleset_version: Mapped[int | None] = mapped_column()
    approved: Mapped[bool] = mapped_column(default=True)
    reason: Mapped[str] = mapped_column(String(1000), default="")
    released_by: Mapped[str] = mapped_column(String(120))
    released_at: Mapped[datetime] = mapped_column(default=utcnow)


class Shipment(DomainBase):
    __tablename__ = "shipment"
    __audited__ = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    order_no: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    ship_date: Mapped[date] = mapped_column(Date)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ShipmentUnit(DomainBase):
    """One shipped unit (or one line without UDIs) for traceability: who received lot X."""

    __tablename__ = "shipment_unit"
    __table_args__ = (
        Index("ix_shipment_unit_lot", "gtin", "lot"),
        Index("ix_shipment_unit_order", "order_no", "line_no"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    shipment_id: Mapped[int] = mapped_column(ForeignKey("shipment.id"), index=True)
    order_no: Mapped[str] = mapped_column(String(64))
    customer_id: Mapped[str] = mapped_column(String(64))
    line_no: Mapped[int]
    gtin: Mapped[str] = mapped_column(String(14))
    lot: Mapped[str] = mapped_column(String(64))
    qty: Mapped[int] = mapped_column(default=1)
    udi: Mapped[str | None] = mapped_column(String(200))
    serial: Mapped[str | None] = mapped_column(String(64))
    expiry: Mapped[date | None] = mapped_column(Date)
    invoice_no: Mapped[str | None] = mapped_column(String(64))


class Invoice(DomainBase):
    __tablename__ = "invoice"
    __audited__ = True
    # Credit exposure sums a customer's unposted invoices on every check.
    __table_args__ = (Index("ix_invoice_customer_unposted", "customer_id", "currency", "posted"),)

    invoice_no: Mapped[str] = mapped_column(String(64), primary_key=True)
    order_no: Mapped[str] = mapped_column(String(64), index=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    invoice_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    net: Mapped[Decimal]
    tax: Mapped[Decimal]
    gross: Mapped[Decimal]
    posted: Mapped[bool] = mapped_column(default=False)
    journal_entry_id: Mapped[int | None] = mapped_column()


class Receivable(DomainBase):
    """An open item: from the ERP (`POST /receivables`) or from a flowgate invoice."""

    __tablename__ = "receivable"
    __table_args__ = (
        Index("ix_receivable_customer_open", "customer_id", "status"),
        Index("ix_receivable_order", "order_no"),
        Index("ix_receivable_dunning", "status", "due_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    document_no: Mapped[str] = mapped_column(String(64), unique=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    amount: Mapped[Decimal]
    open_amount: Mapped[Decimal]
    doc_date: Mapped[date] = mapped_column(Date)
    due_date: Mapped[date] = mapped_column(Date)
    order_no: Mapped[str | None] = mapped_column(String(64))
    source: Mapped[str] = mapped_column(String(16), default="erp")
    status: Mapped[str] = mapped_column(String(10), default="open")
    dunning_level: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class _AgainstItem:
    """What a payment and a write-off share: the open item, the ERP's reference (a repeated one
    is the same document) and the amount taken off it."""

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    receivable_id: Mapped[int] = mapped_column(ForeignKey("receivable.id"), index=True)
    reference: Mapped[str] = mapped_column(String(120), unique=True)
    amount: Mapped[Decimal]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Payment(_AgainstItem, DomainBase):
    __tablename__ = "payment"
    __audited__ = True

    # Indexed for the KPI report (domain/kpis.py): settlements dated after a period.
    paid_on: Mapped[date] = mapped_column(Date, index=True)


class WriteOff(_AgainstItem, DomainBase):
    """Bad debt the ERP wrote off an open item: an input of the credit score (DOMAIN §1)."""

    __tablename__ = "write_off"
    __audited__ = True

    written_off_on: Mapped[date] = mapped_column(Date, index=True)
    reason: Mapped[str] = mapped_column(String(400))


# Orders ---------------------------------------------------------------------------------


def order_totals(lines: list[dict[str, Any]]) -> tuple[Decimal, Decimal, Decimal]:
    """Net, tax and gross of order lines, each line rounded to the cent (what is invoiced)."""
    net = tax = ZERO
    for line in lines:
        amount = (decimal_at(line["unit_price"], "unit_price") * int(line["qty"])).quantize(CENT)
        net += amount
        tax += (amount * decimal_at(line.get("tax_rate", "0"), "tax_rate")).quantize(CENT)
    return net, tax, net + tax


def validate_order_lines(lines: Any, prefix: str) -> None:
    """Order lines as DESIGN §4 has them, or InvalidInput naming the first bad field."""
    for where, line in numbered_lines(lines, prefix):
        gtin_at(text_at(line, "gtin", f"{where}.gtin"), f"{where}.gtin")
        qty = positive_int_at(line.get("qty"), f"{where}.qty")
        price = decimal_at(line.get("unit_price"), f"{where}.unit_price")
        if price < 0:
            raise InvalidInput(f"{where}.unit_price", "must not be negative")
        if qty * price >= MAX_AMOUNT:
            # The credit decision compares the order's amount exactly; past this it cannot.
            raise InvalidInput(f"{where}.qty", f"times unit_price must be under {MAX_AMOUNT:,.0f}")
        tax_rate_at(line.get("tax_rate", "0"), f"{where}.tax_rate")
        if line.get("lot") is not None and (
            not isinstance(line["lot"], str) or len(line["lot"]) > 64
        ):
            raise InvalidInput(f"{where}.lot", "must be text of at most 64 characters")


def validate_shipment(message: Any, name: str = "shipment_confirmed") -> None:
    """The ERP's shipment confirmation, readable before it is matched against the order; a
    shipment that reads but differs from the order (a short line, a wrong UDI) is a hold.

    All of it is read here, before any hold: a held shipment waits for corrected data, and a
    date that cannot be read would only be found at goods issue, after it was kept."""
    if not isinstance(message, dict):
        raise InvalidInput(name, "must be an object with lines")
    if message.get("ship_date") not in (None, ""):  # none: shipped on the day it is confirmed
        date_at(message["ship_date"], f"{name}.ship_date")
    for where, line in numbered_lines(message.get("lines"), f"{name}.lines"):
        positive_int_at(line.get("qty"), f"{where}.qty")
        udis = line.get("udis")
        if udis is not None and not (
            isinstance(udis, list) and all(isinstance(u, str) and 0 < len(u) <= 200 for u in udis)
        ):
            raise InvalidInput(f"{where}.udis", "must be a list of UDI strings")


def validate_order(order: Any, name: str = "order") -> None:
    """The ERP's order document (DESIGN §4), checked before anything of it is stored."""
    if not isinstance(order, dict):
        raise InvalidInput(name, "must be an object with order_no, customer_id and lines")
    for key in ("order_no", "customer_id"):
        if len(text_at(order, key, f"{name}.{key}")) > 64:
            raise InvalidInput(f"{name}.{key}", "must be at most 64 characters")
    currency = order.get("currency")
    if currency is not None and not (isinstance(currency, str) and len(currency) == 3):
        raise InvalidInput(f"{name}.currency", "must be a three-letter ISO 4217 code")
    date_at(order.get("order_date"), f"{name}.order_date")
    if order.get("requested_ship_date") is not None:
        date_at(order["requested_ship_date"], f"{name}.requested_ship_date")
    validate_order_lines(order.get("lines"), f"{name}.lines")


def save_order(session: Session, order: dict[str, Any], instance_id: str | None) -> SalesOrder:
    """Store (or update, for an edited order) the order document and its totals."""
    net, tax, gross = order_totals(order["lines"])
    row = session.get(SalesOrder, order["order_no"])
    if row is None:
        row = SalesOrder(order_no=order["order_no"], status="entered")
        session.add(row)
    row.customer_id = order["customer_id"]
    row.currency = order.get("currency") or "CNY"
    row.instance_id = instance_id or row.instance_id
    row.order_date = date.fromisoformat(order["order_date"])
    row.requested_ship_date = date.fromisoformat(
        order.get("requested_ship_date") or order["order_date"]
    )
    # GTINs as stored everywhere (DOMAIN §3): the journal's dimensions and the recall query
    # read them from these lines.
    row.lines = [{**line, "gtin": str(line["gtin"]).zfill(14)} for line in order["lines"]]
    row.net, row.tax, row.gross = net, tax, gross
    session.flush()
    return row


def get_order(session: Session, order_no: str) -> SalesOrder:
    row = session.get(SalesOrder, order_no)
    if row is None:
        raise SalesError(f"no sales order {order_no}")
    return row


def record_release(session: Session, order_no: str, kind: str, **values: Any) -> HoldRelease:
    row = HoldRelease(order_no=order_no, kind=kind, **values)
    session.add(row)
    session.flush()
    return row


# The statements an order runs on its straight path, built once (see get_lot in inventory).
_RELEASES = select(HoldRelease).where(HoldRelease.order_no == bindparam("order_no"))
_RELEASES_OF_KIND = {
    False: _RELEASES.order_by(HoldRelease.id),
    True: _RELEASES.where(HoldRelease.kind == bindparam("kind")).order_by(HoldRelease.id),
}
_RECEIVABLE = select(Receivable).where(Receivable.document_no == bindparam("document_no"))
_RECEIVABLE_LOCKED = for_update(_RECEIVABLE)


_SHIPPED_SERIALS = (
    select(ShipmentUnit.serial, ShipmentUnit.order_no)
    .join(SalesOrder, SalesOrder.order_no == ShipmentUnit.order_no)
    .where(
        ShipmentUnit.gtin == bindparam("gtin"),
        ShipmentUnit.serial.in_(bindparam("serials", expanding=True)),
        SalesOrder.status != "cancelled",
    )
)


def shipped_serials(session: Session, gtin: str, serials: list[str]) -> dict[str, str]:
    """Which of a GTIN's `serials` went to a customer already, each with its order. A serial
    names one unit (GS1: unique per GTIN); the units of a cancelled order came back into stock
    (o2c.cancel) and may ship again."""
    rows = session.execute(_SHIPPED_SERIALS, {"gtin": gtin, "serials": serials})
    return {serial: order_no for serial, order_no in rows}


def releases(session: Session, order_no: str, kind: str | None = None) -> list[HoldRelease]:
    params = {"order_no": order_no, "kind": kind} if kind is not None else {"order_no": order_no}
    return list(session.scalars(_RELEASES_OF_KIND[kind is not None], params))


# Receivables and payments ---------------------------------------------------------------


def add_receivable(
    session: Session,
    *,
    document_no: str,
    customer_id: str,
    currency: str,
    amount: Decimal,
    doc_date: date,
    due_date: date,
    open_amount: Decimal | None = None,
    order_no: str | None = None,
    source: str = "erp",
) -> Receivable:
    existing = session.scalar(_RECEIVABLE, {"document_no": document_no})
    if existing is not None:
        raise SalesError(f"receivable {document_no} already exists")
    open_amount = amount if open_amount is None else open_amount
    if amount <= 0 or not ZERO <= open_amount <= amount:
        raise SalesError("amount must be positive and open_amount between 0 and amount")
    row = Receivable(
        document_no=document_no,
        customer_id=customer_id,
        currency=currency,
        amount=amount,
        open_amount=open_amount,
        doc_date=doc_date,
        due_date=due_date,
        order_no=order_no,
        source=source,
        status="open" if open_amount > 0 else "paid",
    )
    session.add(row)
    session.flush()
    return row


def get_receivable(session: Session, document_no: str, lock: bool = False) -> Receivable:
    """The open item; with `lock`, held until the command commits, for whoever checks its open
    amount and then settles it (see `domain.records.for_update`)."""
    row = session.scalar(_RECEIVABLE_LOCKED if lock else _RECEIVABLE, {"document_no": document_no})
    if row is None:
        raise SalesError(f"no receivable {document_no}")
    return row


_BY_REFERENCE = {
    model: select(model).where(model.reference == bindparam("reference"))
    for model in (Payment, WriteOff)
}


def _settle(
    session: Session,
    model: type[Payment] | type[WriteOff],
    document_no: str,
    amount: Decimal,
    reference: str,
    closed_as: str,
    **details: Any,
) -> tuple[Any, bool]:
    """Take `amount` off an open item as a payment or a write-off; (row, False) when its
    reference is already booked, so an ERP resending the same document changes nothing."""
    # Locked before anything is read: two settlements at once must not both take the same
    # open amount, nor both book one reference.
    item = get_receivable(session, document_no, lock=True)
    known = session.scalar(_BY_REFERENCE[model], {"reference": reference})
    if known is not None:
        return known, False
    what = "payment" if model is Payment else "write-off"
    if amount <= 0:
        raise SalesError(f"a {what} amount must be positive")
    if amount > item.open_amount:
        raise SalesError(f"{what} {amount} exceeds the open amount {item.open_amount}")
    item.open_amount -= amount
    if item.open_amount == 0:
        item.status = closed_as
    row = model(receivable_id=item.id, reference=reference, amount=amount, **details)
    session.add(row)
    session.flush()
    return row, True


def apply_payment(
    session: Session, document_no: str, amount: Decimal, paid_on: date, reference: str
) -> tuple[Payment, bool]:
    """Book a payment against an open item; (payment, False) when the reference is known."""
    return _settle(session, Payment, document_no, amount, reference, "paid", paid_on=paid_on)


def write_off(
    session: Session,
    document_no: str,
    amount: Decimal,
    written_off_on: date,
    reason: str,
    reference: str,
) -> tuple[WriteOff, bool]:
    """Write off (part of) an open item as bad debt; (write-off, False) when the reference is
    known."""
    return _settle(
        session,
        WriteOff,
        document_no,
        amount,
        reference,
        "bad_debt",
        written_off_on=written_off_on,
        reason=reason,
    )


def write_offs_since(session: Session, customer_id: str, start: date, end: date) -> int:
    """How many write-offs the customer's items had from `start` (exclusive) to `end`."""
    return (
        session.scalar(
            select(func.count(WriteOff.id))
            .join(Receivable, Receivable.id == WriteOff.receivable_id)
            .where(
                Receivable.customer_id == customer_id,
                WriteOff.written_off_on > start,
                WriteOff.written_off_on <= end,
            )
        )
        or 0
    )


def receivable_as_dict(row: Receivable) -> dict[str, Any]:
    return {
        "document_no": row.document_no,
        "customer_id": row.customer_id,
        "currency": row.currency,
        "amount": str(row.amount),
        "open_amount": str(row.open_amount),
        "doc_date": row.doc_date.isoformat(),
        "due_date": row.due_date.isoformat(),
        "order_no": row.order_no,
        "status": row.status,
        "dunning_level": row.dunning_level,
    }


# Exposure ------------------------------------------------------------------------------


@dataclass
class Exposure:
    open_orders: list[tuple[Decimal, date]] = field(default_factory=list)
    open_deliveries: Decimal = ZERO
    invoiced_unposted: Decimal = ZERO
    open_items: list[tuple[Decimal, date]] = field(default_factory=list)
    dunning_level: int = 0


# Every credit check reads these three; built once.
_CUSTOMER_ID, _CURRENCY = bindparam("customer_id"), bindparam("currency")
_EXPOSURE_ORDERS = select(
    SalesOrder.order_no, SalesOrder.status, SalesOrder.gross, SalesOrder.requested_ship_date
).where(
    SalesOrder.customer_id == _CUSTOMER_ID,
    SalesOrder.currency == _CURRENCY,
    SalesOrder.status.in_((*OPEN_ORDER_STATUSES, "shipped")),
)
_EXPOSURE_UNPOSTED = select(Invoice.gross).where(
    Invoice.customer_id == _CUSTOMER_ID, Invoice.currency == _CURRENCY, Invoice.posted.is_(False)
)
_EXPOSURE_ITEMS = select(
    Receivable.open_amount, Receivable.due_date, Receivable.dunning_level
).where(
    Receivable.customer_id == _CUSTOMER_ID,
    Receivable.currency == _CURRENCY,
    Receivable.status == "open",
)


_HIGHEST_DUNNING = select(func.max(Receivable.dunning_level)).where(
    Receivable.customer_id == _CUSTOMER_ID,
    Receivable.currency == _CURRENCY,
    Receivable.status == "open",
)


def highest_dunning_level(session: Session, customer_id: str, currency: str) -> int:
    """The highest dunning level of the customer's open items in `currency`; 0 for none."""
    level = session.scalar(_HIGHEST_DUNNING, {"customer_id": customer_id, "currency": currency})
    return int(level or 0)


def open_exposure(
    session: Session, customer_id: str, currency: str, exclude_order: str | None
) -> Exposure:
    """The four buckets of DOMAIN §1 for one customer and currency, without `exclude_order`."""
    exposure = Exposure()
    party = {"customer_id": customer_id, "currency": currency}
    orders = session.execute(_EXPOSURE_ORDERS, party)
    for order_no, status, gross, ship_date in orders:
        if order_no == exclude_order:
            continue
        if status == "shipped":
            exposure.open_deliveries += gross
        else:
            exposure.open_orders.append((gross, ship_date))
    # Summed in Python: SQLite keeps money as text, and SUM would turn it into a float.
    unposted = session.scalars(_EXPOSURE_UNPOSTED, party)
    exposure.invoiced_unposted = sum(unposted, ZERO)
    items = session.execute(_EXPOSURE_ITEMS, party)
    for open_amount, due, level in items:
        exposure.open_items.append((open_amount, due))
        exposure.dunning_level = max(exposure.dunning_level, level)
    return exposure


def due_date_for(invoice_date: date, payment_terms_days: int) -> date:
    return invoice_date + timedelta(days=payment_terms_days)
