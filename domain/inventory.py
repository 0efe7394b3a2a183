"""Lots (DOMAIN §2): the lot master with QA status, expiry, unit cost and quantity on hand.

Functions other processes may call (the P2P helper's goods receipt among them); each takes the
caller's session and flushes, never commits, so it joins the command's transaction:

- `receive_lot(session, gtin, lot, qty=, expiry_date=, unit_cost=, ...)`: a goods receipt.
  A new lot starts `quarantined` until QA releases it; a known lot gains the quantity and
  keeps its status.
- `upsert_lot(session, gtin, lot, expiry_date=, status=, unit_cost=, ...)`: the ERP's master data.
- `set_status(session, gtin, lot, status, reason=, actor=)`: QA release, recall, return...
- `get_lot(session, gtin, lot)` / `require_lot(...)`: read one (None / LotNotFound).
- `issue_lot(session, gtin, lot, qty)`: goods issue takes quantity off hand.
- `fefo_lots(session, gtin, ship_date, min_shelf_life_days)`: released lots, first-expiring first.
- `lot_as_dict(lot)`: the API's JSON shape.

Every status change writes an audited `LotStatusChange` row, so a QA release or a recall is an
audit event with who and why. GTINs are stored as 14 digits.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, ForeignKey, Index, String, UniqueConstraint, bindparam, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from domain.records import DomainBase, for_update
from domain.types import BigId, utcnow

# "fsca": under a field safety corrective action, rejected like a recall (DOMAIN §2); the
# status columns are 16 characters wide.
LOT_STATUSES = (
    "released",
    "quarantined",
    "recalled",
    "fsca",
    "expired",
    "returned",
)


class LotNotFound(LookupError):
    pass


class RecallIsFinal(ValueError):
    """A lot that was ever recalled never becomes shippable again (DOMAIN §2: no override)."""


# Statuses from which a lot could ship, or be inspected and then ship.
_SHIPPABLE_AGAIN = frozenset({"released", "quarantined", "fsca"})


class Lot(DomainBase):
    __tablename__ = "lot"
    __table_args__ = (
        UniqueConstraint("gtin", "lot", name="uq_lot_gtin_lot"),
        Index("ix_lot_gtin_expiry", "gtin", "expiry_date"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    gtin: Mapped[str] = mapped_column(String(14))
    lot: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="quarantined")
    expiry_date: Mapped[date] = mapped_column(Date)
    production_date: Mapped[date | None] = mapped_column(Date)
    unit_cost: Mapped[Decimal] = mapped_column(default=Decimal("0.00"))
    qty_on_hand: Mapped[int] = mapped_column(default=0)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class LotStatusChange(DomainBase):
    """Who moved a lot to which status and why (QA release, recall, receipt)."""

    __tablename__ = "lot_status_change"
    __audited__ = True

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    lot_id: Mapped[int] = mapped_column(ForeignKey("lot.id"), index=True)
    old_status: Mapped[str | None] = mapped_column(String(16))
    new_status: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(String(400), default="")
    actor: Mapped[str] = mapped_column(String(120), default="")
    at: Mapped[datetime] = mapped_column(default=utcnow)


def normalize_gtin(gtin: str) -> str:
    """14 digits, left-padded; the check digit itself is verified where UDIs are parsed."""
    text = str(gtin).strip()
    if not text.isdigit() or len(text) not in (8, 12, 13, 14):
        raise ValueError(f"GTIN must be 8, 12, 13 or 14 digits, got {gtin!r}")
    return text.zfill(14)


def _check_status(status: str) -> str:
    if status not in LOT_STATUSES:
        raise ValueError(f"lot status must be one of {', '.join(LOT_STATUSES)}, got {status!r}")
    return status


# Read several times by every order (credit, shipment, UDI check, goods issue): built once, so
# a command neither rebuilds the statement nor recomputes its cache key.
_LOT = select(Lot).where(Lot.gtin == bindparam("gtin"), Lot.lot == bindparam("lot"))
_LOT_LOCKED = for_update(_LOT)


def get_lot(session: Session, gtin: str, lot: str) -> Lot | None:
    return session.scalar(_LOT, {"gtin": normalize_gtin(gtin), "lot": lot})


def require_lot(session: Session, gtin: str, lot: str, lock: bool = False) -> Lot:
    """The lot; with `lock`, held until the command commits (see `domain.records.for_update`)."""
    found = session.scalar(
        _LOT_LOCKED if lock else _LOT, {"gtin": normalize_gtin(gtin), "lot": lot}
    )
    if found is None:
        raise LotNotFound(f"lot {lot} of GTIN {gtin} is not in the lot master")
    return found


def _record_status(session: Session, row: Lot, old: str | None, reason: str, actor: str) -> None:
    session.add(
        LotStatusChange(
            lot_id=row.id, old_status=old, new_status=row.status, reason=reason, actor=actor
        )
    )


def upsert_lot(
    session: Session,
    gtin: str,
    lot: str,
    *,
    expiry_date: date,
    status: str | None = None,
    unit_cost: Decimal | None = None,
    production_date: date | None = None,
    qty_on_hand: int | None = None,
    actor: str = "erp",
    reason: str = "master data sync",
) -> Lot:
    """Create or update a lot from master data; a new lot without a status is quarantined."""
    if status is not None:
        _check_status(status)
    row = get_lot(session, gtin, lot)
    old_status = row.status if row is not None else None
    if row is None:
        row = Lot(gtin=normalize_gtin(gtin), lot=lot, status=status or "quarantined")
        session.add(row)
    elif status is not None:
        _check_not_recalled(session, row, status)
        row.status = status
    row.expiry_date = expiry_date
    if production_date is not None:
        row.production_date = production_date
    if unit_cost is not None:
        row.unit_cost = unit_cost
    if qty_on_hand is not None:
        row.qty_on_hand = qty_on_hand
    session.flush()
    if old_status != row.status:
        _record_status(session, row, old_status, reason, actor)
    return row


def receive_lot(
    session: Session,
    gtin: str,
    lot: str,
    *,
    qty: int,
    expiry_date: date,
    unit_cost: Decimal,
    production_date: date | None = None,
    actor: str = "goods_receipt",
    reason: str = "goods receipt",
) -> Lot:
    """A goods receipt: the lot waits in quarantine for QA, a known one with its new quantity.

    New units of a released lot are not inspected yet, and the lot is one record: it goes back
    to quarantine until they are (DOMAIN §4), so no uninspected unit ships. A recalled lot, or
    one under a field safety action, keeps that status. The cost is the moving average of what
    was on hand and what arrived.
    """
    if qty <= 0:
        raise ValueError("received quantity must be positive")
    row = get_lot(session, gtin, lot)
    if row is None:
        row = Lot(
            gtin=normalize_gtin(gtin),
            lot=lot,
            status="quarantined",
            expiry_date=expiry_date,
            production_date=production_date,
            unit_cost=unit_cost,
            qty_on_hand=qty,
        )
        session.add(row)
        session.flush()
        _record_status(session, row, None, reason, actor)
        return row
    on_hand = max(row.qty_on_hand, 0)
    total = on_hand + qty
    row.unit_cost = ((row.unit_cost * on_hand + unit_cost * qty) / total).quantize(Decimal("0.01"))
    row.qty_on_hand += qty
    old_status = row.status
    if old_status not in ("quarantined", "recalled", "fsca") and (
        session.scalar(_EVER_RECALLED.limit(1), {"lot_id": row.id}) is None
    ):
        row.status = "quarantined"
        _record_status(session, row, old_status, f"{reason}: {qty} new units to inspect", actor)
    session.flush()
    return row


_EVER_RELEASED = select(LotStatusChange.id).where(
    LotStatusChange.lot_id == bindparam("lot_id"), LotStatusChange.new_status == "released"
)


_EVER_RECALLED = select(LotStatusChange.id).where(
    LotStatusChange.lot_id == bindparam("lot_id"), LotStatusChange.new_status == "recalled"
)


def _check_not_recalled(session: Session, row: Lot, status: str) -> None:
    """Refuse a status a recalled lot could ship from, also after a detour (recalled, then
    returned, then released): the lot's history, not only its current status, decides."""
    if status not in _SHIPPABLE_AGAIN or status == row.status:
        return
    if row.status == "recalled" or (
        row.id is not None and session.scalar(_EVER_RECALLED.limit(1), {"lot_id": row.id})
    ):
        raise RecallIsFinal(f"lot {row.lot} was recalled; a recall cannot be lifted")


def ever_released(session: Session, row: Lot) -> bool:
    """Whether the lot was released at some time (by QA or the ERP): units it had then passed."""
    return session.scalar(_EVER_RELEASED.limit(1), {"lot_id": row.id}) is not None


def set_status(
    session: Session, gtin: str, lot: str, status: str, *, reason: str = "", actor: str = ""
) -> Lot:
    row = require_lot(session, gtin, lot)
    old = row.status
    _check_not_recalled(session, row, status)
    row.status = _check_status(status)
    session.flush()
    if old != row.status:
        _record_status(session, row, old, reason, actor)
    return row


def issue_lot(session: Session, gtin: str, lot: str, qty: int) -> Lot:
    """Goods issue. Stock may go negative (the ERP is the stock master); the cost is what counts."""
    # Locked: two orders shipping from one lot at once must both come off its stock.
    row = require_lot(session, gtin, lot, lock=True)
    row.qty_on_hand -= qty
    session.flush()
    return row


def fefo_lots(session: Session, gtin: str, ship_date: date, min_shelf_life_days: int) -> list[Lot]:
    """Released lots of a GTIN with enough shelf life at `ship_date`, first-expiring first."""
    cutoff = ship_date + timedelta(days=min_shelf_life_days)
    return list(
        session.scalars(
            select(Lot)
            .where(
                Lot.gtin == normalize_gtin(gtin),
                Lot.status == "released",
                Lot.expiry_date >= cutoff,
                Lot.qty_on_hand > 0,
            )
            .order_by(Lot.expiry_date, Lot.lot)
        )
    )


def lot_as_dict(row: Lot) -> dict[str, Any]:
    return {
        "gtin": row.gtin,
        "lot": row.lot,
        "status": row.status,
        "expiry_date": row.expiry_date.isoformat(),
        "production_date": row.production_date.isoformat() if row.production_date else None,
        "unit_cost": str(row.unit_cost),
        "qty_on_hand": row.qty_on_hand,
    }
