"""Domain tables (DESIGN §1 `domain/`). They live on their own declarative base so that the
domain never imports the engine; Alembic migrates both metadatas (see migrations/env.py).

Models whose rows an auditor must see set `__audited__ = True`; the engine's audit recorder
turns every new row of such a model into an audit event in the same transaction.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Select, String
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship

from domain.types import BigId, Money, UTCDateTime, utcnow


def for_update(statement: Select[Any]) -> Select[Any]:
    """`statement` locking its rows until the command commits, and re-reading them even when
    the session holds them already.

    For a check that reads what other instances' commands change, then acts on it: a
    customer's exposure, a lot's stock, an open item, a supplier's invoices. On PostgreSQL
    commands of different instances run side by side, and without the lock two of them could
    both pass a check that only one may pass (two orders each within the credit limit, both
    released). SQLite's write lock already runs commands one at a time; SQLAlchemy leaves FOR
    UPDATE out there.
    """
    return statement.with_for_update().execution_options(populate_existing=True)


def locks_rows(session: Session) -> bool:
    """False on SQLite, where a row lock would only cost a query the identity map saves."""
    return session.get_bind().dialect.name != "sqlite"


class DomainBase(DeclarativeBase):
    type_annotation_map = {
        datetime: UTCDateTime,
        Decimal: Money,
        dict[str, Any]: JSON,
        list[Any]: JSON,
    }


class JournalEntry(DomainBase):
    """One posting sent to the finance system. Immutable: a correction is a reversal."""

    __tablename__ = "journal_entry"
    __audited__ = True
    __table_args__ = (Index("ix_journal_entry_posted_at", "posted_at"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Stable per business event (e.g. "invoice:INV-1"), so a retried handler posts once.
    source_key: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(40))
    currency: Mapped[str] = mapped_column(String(3), default="CNY")
    posted_at: Mapped[datetime] = mapped_column(default=utcnow)
    description: Mapped[str] = mapped_column(String(400), default="")
    instance_id: Mapped[str | None] = mapped_column(String(36), index=True)
    reverses_id: Mapped[int | None] = mapped_column(ForeignKey("journal_entry.id"))
    reversed_by_id: Mapped[int | None] = mapped_column(BigId)
    lines: Mapped[list[JournalLine]] = relationship(
        back_populates="entry", order_by="JournalLine.line_no", lazy="selectin"
    )


class JournalLine(DomainBase):
    __tablename__ = "journal_line"
    __table_args__ = (
        Index("ix_journal_line_lot", "gtin", "lot"),
        Index("ix_journal_line_order", "order_no"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    entry_id: Mapped[int] = mapped_column(ForeignKey("journal_entry.id"), index=True)
    line_no: Mapped[int]
    account: Mapped[str] = mapped_column(String(20))
    debit: Mapped[Decimal] = mapped_column(default=Decimal("0.00"))
    credit: Mapped[Decimal] = mapped_column(default=Decimal("0.00"))
    # Dimensions (DOMAIN §5): whichever apply to the line.
    customer_id: Mapped[str | None] = mapped_column(String(64))
    supplier_id: Mapped[str | None] = mapped_column(String(64))
    order_no: Mapped[str | None] = mapped_column(String(64))
    po_no: Mapped[str | None] = mapped_column(String(64))
    invoice_no: Mapped[str | None] = mapped_column(String(64))
    lot: Mapped[str | None] = mapped_column(String(64))
    gtin: Mapped[str | None] = mapped_column(String(14))
    udi: Mapped[str | None] = mapped_column(String(200))
    cost_centre: Mapped[str | None] = mapped_column(String(32))
    entry: Mapped[JournalEntry] = relationship(back_populates="lines")
