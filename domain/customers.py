"""Customers and their credit accounts (DOMAIN §1), synced from the ERP.

Exposure comes from the records (`domain.sales.open_exposure`: open orders of running O2C
instances, deliveries, unposted invoices, open receivables); `engine.handlers.o2c` turns it
into the `credit` ruleset's facts for both the API and the business rule task, so they agree.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, String
from sqlalchemy.orm import Mapped, Session, mapped_column

from domain.records import DomainBase
from domain.types import utcnow

ZERO = Decimal("0.00")


class CustomerNotFound(LookupError):
    pass


class Customer(DomainBase):
    __tablename__ = "customer"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    credit_limit: Mapped[Decimal] = mapped_column(default=ZERO)
    payment_terms_days: Mapped[int] = mapped_column(default=30)
    blocked: Mapped[bool] = mapped_column(default=False)
    license_expires_on: Mapped[date | None] = mapped_column(Date)
    min_shelf_life_days: Mapped[int | None] = mapped_column()
    next_review_on: Mapped[date | None] = mapped_column(Date)
    # Score and grade come from the `credit_score` ruleset or the ERP; new customers are N.
    score: Mapped[int | None] = mapped_column()
    grade: Mapped[str] = mapped_column(String(1), default="N")
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


def get_customer(session: Session, customer_id: str) -> Customer:
    row = session.get(Customer, customer_id)
    if row is None:
        raise CustomerNotFound(f"customer {customer_id} is not known; sync it first")
    return row


CUSTOMER_FIELDS = (
    "name",
    "currency",
    "credit_limit",
    "payment_terms_days",
    "blocked",
    "license_expires_on",
    "min_shelf_life_days",
    "next_review_on",
    "score",
    "grade",
)


def upsert_customer(session: Session, customer_id: str, values: dict[str, Any]) -> Customer:
    """Create or update a customer from validated master data (only the given fields change)."""
    row = session.get(Customer, customer_id)
    if row is None:
        row = Customer(id=customer_id, name=values.get("name") or customer_id)
        session.add(row)
    for name in CUSTOMER_FIELDS:
        if name in values:
            setattr(row, name, values[name])
    session.flush()
    return row


def credit_summary(
    session: Session, customer: Customer, facts: dict[str, Any], as_of: date
) -> dict[str, Any]:
    """`GET /customers/{id}/credit`: the buckets, and the exposure the `credit` rules check."""
    from domain.sales import open_exposure

    exposure = open_exposure(session, customer.id, customer.currency, None)
    overdue = [(amount, (as_of - due).days) for amount, due in exposure.open_items if due < as_of]
    checked = facts["checked_exposure"]
    return {
        "customer_id": customer.id,
        "currency": customer.currency,
        "limit": str(customer.credit_limit),
        "exposure": {
            "open_orders": str(sum((a for a, _ in exposure.open_orders), ZERO)),
            "open_deliveries": str(exposure.open_deliveries),
            "invoiced_unposted": str(exposure.invoiced_unposted),
            "open_receivables": str(sum((a for a, _ in exposure.open_items), ZERO)),
            "total": str(checked),
            "check": "dynamic" if checked != facts["static_exposure"] else "static",
        },
        "available": str(customer.credit_limit - checked),
        "score": customer.score,
        "grade": customer.grade,
        "overdue": {
            "amount": str(sum((a for a, _ in overdue), ZERO)),
            "oldest_days": max((d for _, d in overdue), default=0),
        },
        "dunning_level": exposure.dunning_level,
        "blocked": customer.blocked,
        "license_expires_on": (
            customer.license_expires_on.isoformat() if customer.license_expires_on else None
        ),
    }


def customer_as_dict(row: Customer) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id}
    for name in CUSTOMER_FIELDS:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, date) else value
    out["credit_limit"] = str(row.credit_limit)
    return out
