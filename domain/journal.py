"""Postings (DOMAIN §5): balanced, immutable journal entries with dimensions.

The account map is configuration: `AccountMap.from_config` overlays the codes given in
`FLOWGATE_ACCOUNT_MAP` (JSON) or a settings dict on the Chinese chart-of-accounts defaults.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from domain.errors import UnbalancedEntry
from domain.records import JournalEntry, JournalLine
from domain.types import utcnow

CENT = Decimal("0.01")

# Writes new rows of one mapped class, every column set, and leaves them persistent. The
# default adds and flushes; the engine passes its one-statement writer
# (engine/store/inserts.insert_loaded), which domain code may not import.
RowWriter = Callable[[Session, Sequence[Any]], None]

DEFAULT_ACCOUNTS: dict[str, str] = {
    "ar": "1122",
    "revenue": "6001",
    "output_vat": "22210106",
    "cogs": "6401",
    "inventory": "1405",
    "bank": "1002",
    "ap": "2202",
    "input_vat": "22210101",
    "grir": "220202",
    "price_difference": "640102",
    "rounding": "660303",
    # DOMAIN §5 names a discount account for vendor payments without a code; financial
    # income from cash discounts sits under finance expenses in the Chinese chart.
    "discount": "660302",
}


@dataclass(frozen=True)
class AccountMap:
    codes: Mapping[str, str]

    @classmethod
    def from_config(cls, overrides: Mapping[str, str] | None = None) -> AccountMap:
        unknown = set(overrides or {}) - set(DEFAULT_ACCOUNTS)
        if unknown:
            raise ValueError(f"unknown account names in the account map: {sorted(unknown)}")
        return cls({**DEFAULT_ACCOUNTS, **(overrides or {})})

    def __getitem__(self, name: str) -> str:
        return self.codes[name]


@dataclass(frozen=True)
class Line:
    """One side of a posting, by account *name* (resolved through the account map)."""

    account: str
    debit: Decimal = Decimal("0")
    credit: Decimal = Decimal("0")
    dims: Mapping[str, str | None] = field(default_factory=dict)


DIMENSIONS = frozenset(
    {
        "customer_id",
        "supplier_id",
        "order_no",
        "po_no",
        "invoice_no",
        "lot",
        "gtin",
        "udi",
        "cost_centre",
    }
)


def _cents(amount: Decimal) -> Decimal:
    if isinstance(amount, float):
        raise TypeError("money must be Decimal, not float")
    return Decimal(amount).quantize(CENT)


# Every posting first looks for itself; built once, as statements run per command are
# (engine/runtime/commands.py).
_BY_SOURCE_KEY = select(JournalEntry).where(JournalEntry.source_key == bindparam("source_key"))


def _posted(session: Session, source_key: str) -> JournalEntry | None:
    """The entry already posted under `source_key`, if any.

    Entries are written at once (flushed or inserted), never left pending, so the lookup needs
    no autoflush: the command's other pending rows go out with its next flush instead of in one
    of their own here.
    """
    with session.no_autoflush:
        return session.scalar(_BY_SOURCE_KEY, {"source_key": source_key})


def post(
    session: Session,
    accounts: AccountMap,
    *,
    kind: str,
    source_key: str,
    lines: Iterable[Line],
    description: str = "",
    instance_id: str | None = None,
    posted_at: datetime | None = None,
    write: RowWriter | None = None,
) -> JournalEntry:
    """Write one balanced entry, or return the one already posted under `source_key`.

    Amounts are rounded to the cent per line first and the balance is checked on the rounded
    figures, so what the finance system receives balances exactly. `write` (see RowWriter)
    stores the entry and its lines; by default they are added and flushed.
    """
    existing = _posted(session, source_key)
    if existing is not None:
        return existing
    rows: list[JournalLine] = []
    for number, line in enumerate(lines, start=1):
        unknown = set(line.dims) - DIMENSIONS
        if unknown:
            raise ValueError(f"unknown journal dimensions: {sorted(unknown)}")
        debit, credit = _cents(line.debit), _cents(line.credit)
        if debit < 0 or credit < 0 or (debit and credit):
            raise UnbalancedEntry(f"line {number}: one positive side per line ({line.account})")
        if not debit and not credit:
            continue
        rows.append(
            JournalLine(
                id=None,
                line_no=number,
                account=accounts[line.account],
                debit=debit,
                credit=credit,
                # Every dimension set, None where absent: lines with the same columns go out
                # as one multi-row INSERT instead of one per pattern of dimensions.
                **{name: line.dims.get(name) for name in DIMENSIONS},
            )
        )
    total_debit = sum((r.debit for r in rows), Decimal("0.00"))
    total_credit = sum((r.credit for r in rows), Decimal("0.00"))
    if not rows or total_debit != total_credit:
        raise UnbalancedEntry(
            f"{kind} {source_key}: debits {total_debit} != credits {total_credit}"
        )
    entry = JournalEntry(
        id=None,
        source_key=source_key,
        kind=kind,
        currency="CNY",
        description=description,
        instance_id=instance_id,
        reverses_id=None,
        reversed_by_id=None,
        posted_at=posted_at or utcnow(),
    )
    if write is None:
        entry.lines = rows
        session.add(entry)
        session.flush()
        return entry
    write(session, [entry])
    for row in rows:
        row.entry_id = entry.id
    write(session, rows)
    # Both sides of the relationship as loaded, so nothing reads the lines back.
    set_committed_value(entry, "lines", rows)
    for row in rows:
        set_committed_value(row, "entry", entry)
    return entry


def reverse(session: Session, entry: JournalEntry, reason: str) -> JournalEntry:
    """Post the mirror image of `entry` (debits and credits swapped), once."""
    if entry.reverses_id is not None:
        raise ValueError(f"journal entry {entry.id} is itself a reversal")
    source_key = f"reversal:{entry.source_key}"
    existing = _posted(session, source_key)
    if existing is not None:
        return existing
    mirror = JournalEntry(
        source_key=source_key,
        kind=f"{entry.kind}.reversal",
        currency=entry.currency,
        description=reason,
        instance_id=entry.instance_id,
        reverses_id=entry.id,
        posted_at=utcnow(),
        lines=[
            JournalLine(
                line_no=line.line_no,
                account=line.account,
                debit=line.credit,
                credit=line.debit,
                **{name: getattr(line, name) for name in DIMENSIONS},
            )
            for line in entry.lines
        ],
    )
    session.add(mirror)
    session.flush()
    # The only column ever set after insert: the pointer that says "reversed", for queries.
    entry.reversed_by_id = mirror.id
    return mirror


def entry_as_dict(entry: JournalEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "source_key": entry.source_key,
        "kind": entry.kind,
        "currency": entry.currency,
        "posted_at": entry.posted_at.isoformat(),
        "description": entry.description,
        "instance_id": entry.instance_id,
        "reverses_id": entry.reverses_id,
        "reversed_by_id": entry.reversed_by_id,
        "lines": [
            {
                "line_no": line.line_no,
                "account": line.account,
                "debit": str(line.debit),
                "credit": str(line.credit),
                **{name: getattr(line, name) for name in sorted(DIMENSIONS) if getattr(line, name)},
            }
            for line in entry.lines
        ],
    }
