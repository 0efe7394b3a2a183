"""Customers and their credit accounts (DOMAIN §1), synced from the ERP.

Exposure comes from the records (`domain.sales.open_exposure`: open orders of running O2C
instances, deliveries, unposted invoices, open receivables); `engine.handlers.o2c` turns it
into the `credit` ruleset's facts for both the API and the business rule task, so they agree.
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, String, UniqueConstraint, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from domain.records import DomainBase, for_update, locks_rows
from domain.types import BigId, utcnow

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


_CUSTOMER_LOCKED = for_update(select(Customer).where(Customer.id == bindparam("customer_id")))


def get_customer(session: Session, customer_id: str, lock: bool = False) -> Customer:
    """The customer; with `lock`, held until the command commits, so that one credit check of
    the customer runs at a time (see `domain.records.for_update`)."""
    if lock and locks_rows(session):
        row = session.scalar(_CUSTOMER_LOCKED, {"customer_id": customer_id})
    else:
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
        "scoring": _scoring(session, customer.id),
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


def _scoring(session: Session, customer_id: str) -> dict[str, Any] | None:
    """The last nightly score and its recommendation (the limit itself changes by decision)."""
    run = latest_score_run(session, customer_id)
    if run is None:
        return None
    return {
        "scored_on": run.as_of.isoformat(),
        "score": run.score,
        "grade": run.grade,
        "previous_grade": run.previous_grade,
        "recommended_limit": str(run.recommended_limit),
        "recommended_terms": run.payment_terms,
        "decision_id": run.decision_id,
    }


def customer_as_dict(row: Customer) -> dict[str, Any]:
    out: dict[str, Any] = {"id": row.id}
    for name in CUSTOMER_FIELDS:
        value = getattr(row, name)
        out[name] = value.isoformat() if isinstance(value, date) else value
    out["credit_limit"] = str(row.credit_limit)
    return out


class CustomerScoreRun(DomainBase):
    """One nightly (or on-demand) scoring of a customer: the result and the recommendation.

    The recommended limit and terms are kept here for the credit manager, not written to the
    customer: a limit changes only by a documented decision. The unique (customer, day) key makes
    a second run on the same day, from this or another scheduler, a no-op.
    """

    __tablename__ = "customer_score_run"
    __table_args__ = (UniqueConstraint("customer_id", "as_of", name="uq_customer_score_run_day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[date] = mapped_column(Date)
    score: Mapped[int]
    grade: Mapped[str] = mapped_column(String(1))
    previous_grade: Mapped[str | None] = mapped_column(String(1))
    recommended_limit: Mapped[Decimal]
    payment_terms: Mapped[str] = mapped_column(String(40))
    decision_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class CustomerRiskEvent(DomainBase):
    """A credit downgrade for the credit manager and the ERP (DOMAIN §1). Append-only."""

    __tablename__ = "customer_risk_event"
    __audited__ = True
    __table_args__ = (UniqueConstraint("customer_id", "as_of", name="uq_customer_risk_event_day"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    customer_id: Mapped[str] = mapped_column(String(64))
    as_of: Mapped[date] = mapped_column(Date)
    kind: Mapped[str] = mapped_column(String(20), default="downgrade")
    previous_grade: Mapped[str] = mapped_column(String(1))
    grade: Mapped[str] = mapped_column(String(1))
    score: Mapped[int]
    decision_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


def latest_score_run(session: Session, customer_id: str) -> CustomerScoreRun | None:
    return session.scalar(
        select(CustomerScoreRun)
        .where(CustomerScoreRun.customer_id == customer_id)
        .order_by(CustomerScoreRun.as_of.desc())
        .limit(1)
    )
