"""Receivables KPIs (shared DOMAIN §1, "Receivables KPIs") for one currency and one period.

The period runs from `first_day` to `last_day`, both included, in UTC; `days` counts both ends.
Every amount is in the report's currency; items in other currencies are not converted, they are
another report. Each figure:

- **credit sales**: the amount of every receivable (ERP open items and flowgate invoices
  alike) whose document date falls in the period, whatever has been paid since; cancelled
  invoices are left out. An amount the ERP had settled before it sent the item counts as
  settled before the period's end.
- **open AR, current AR, overdue AR**: what was still open at the end of `last_day` on items
  dated on or before it: today's open amount plus payments and write-offs dated after
  `last_day`. An item is overdue when its due date is before `last_day`, current ("not yet
  due") when it is due on `last_day` or later. Open AR = current AR + overdue AR.
- **DSO** = open AR / credit sales * days. **Best possible DSO** = current AR / credit sales *
  days. **Average days delinquent** = DSO - best possible DSO, both as shown (so the three
  shown figures add up).
- **overdue ratio** = overdue AR / open AR.
- **bad-debt ratio** = write-offs dated in the period (on any item, whenever dated) / credit
  sales.
- **hold rate** = credit decisions in the period with outcome `hold` / all credit decisions in
  the period. A `reject` is not a hold (nothing waits to be released); it is counted among the
  decisions. Every evaluation counts, a re-check before goods issue included (each is its
  own `credit_check` decision record).
- **average hold-release hours**: over the holds (held credit decisions) placed in the period
  that were released by the end of `last_day`, the time from the decision to the documented
  release (`hold_release` of kind `credit`) that released it: the second approval when the
  decision asked for N-eyes. A hold refused by an approver, still waiting, or waiting for a
  prepayment (grade D, which no approver releases) is counted, not averaged.
- **average approval cycle hours**: over the credit approval tasks (`approve_credit`,
  `approve_credit_second`) created in the period and completed by the end of `last_day`, the
  time from creation to completion, whether the approver released or refused.

Any division by zero gives None (no figure), never an error. Ratios have 4 decimals, days and
hours 1, rounded half up. Money is summed in the database in whole cents: SQLite keeps money as
text, and its SUM would turn it into a float.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, cast, func, literal_column, select
from sqlalchemy.orm import Session

from domain.sales import Payment, Receivable, WriteOff

ZERO = Decimal("0.00")
RATIO = Decimal("0.0001")
TENTH = Decimal("0.1")
HOUR = timedelta(hours=1)
# Every item but a cancelled invoice (its order's cancellation reversed the sale).
SOLD_STATUSES = ("open", "paid", "bad_debt")
# What the report may span: a year, leap day included.
MAX_PERIOD_DAYS = 366


@dataclass(frozen=True)
class Period:
    first_day: date
    last_day: date

    @property
    def days(self) -> int:
        return (self.last_day - self.first_day).days + 1

    @property
    def start(self) -> datetime:
        """The first instant of `first_day`, UTC."""
        return datetime.combine(self.first_day, time.min, UTC)

    @property
    def end(self) -> datetime:
        """The first instant after `last_day`, UTC (exclusive)."""
        return datetime.combine(self.last_day + timedelta(days=1), time.min, UTC)


@dataclass(frozen=True)
class HoldAnswer:
    """A credit hold with one approver's answer to it (or none yet): one row of the report's
    read, several per hold, in the order given."""

    decision_id: int
    held_at: datetime
    approvals_needed: int
    answered_at: datetime | None = None
    approved: bool | None = None


@dataclass(frozen=True)
class HoldSummary:
    placed: int = 0
    released: int = 0
    refused: int = 0
    not_released: int = 0
    release_time: timedelta = timedelta(0)


@dataclass(frozen=True)
class ApprovalSummary:
    completed: int = 0
    waiting: int = 0
    cycle_time: timedelta = timedelta(0)


@dataclass(frozen=True)
class ReceivablesInputs:
    """Everything the figures are computed from, as a credit manager would check them."""

    days: int
    credit_sales: Decimal = ZERO
    credit_sales_items: int = 0
    current_ar: Decimal = ZERO
    overdue_ar: Decimal = ZERO
    write_offs: Decimal = ZERO
    decisions: Mapping[str, int] = field(default_factory=dict)
    holds: HoldSummary = HoldSummary()
    approvals: ApprovalSummary = ApprovalSummary()

    @property
    def open_ar(self) -> Decimal:
        return self.current_ar + self.overdue_ar

    @property
    def decision_count(self) -> int:
        return sum(self.decisions.values())


@dataclass(frozen=True)
class ReceivablesKpis:
    dso_days: Decimal | None
    best_possible_dso_days: Decimal | None
    average_days_delinquent: Decimal | None
    overdue_ratio: Decimal | None
    bad_debt_ratio: Decimal | None
    hold_rate: Decimal | None
    average_hold_release_hours: Decimal | None
    average_approval_cycle_hours: Decimal | None


def _share(part: Decimal | int, whole: Decimal | int, scale: Decimal = RATIO) -> Decimal | None:
    if not whole:
        return None
    return (Decimal(part) / Decimal(whole)).quantize(scale, ROUND_HALF_UP)


def _hours(total: timedelta, count: int) -> Decimal | None:
    if not count:
        return None
    # Whole microseconds: a timedelta is exact there, and a float of seconds is not.
    micros = Decimal(total // timedelta(microseconds=1))
    return (micros / Decimal(count) / Decimal(HOUR // timedelta(microseconds=1))).quantize(
        TENTH, ROUND_HALF_UP
    )


def hours(total: timedelta) -> Decimal:
    """A duration in hours to one decimal, as the report shows its totals."""
    return _hours(total, 1) or Decimal("0.0")


def receivables_kpis(inputs: ReceivablesInputs) -> ReceivablesKpis:
    """The figures of DOMAIN §1 from their inputs; no figure where its divisor is zero."""
    sales, days = inputs.credit_sales, inputs.days
    dso = _share(inputs.open_ar * days, sales, TENTH)
    best = _share(inputs.current_ar * days, sales, TENTH)
    return ReceivablesKpis(
        dso_days=dso,
        best_possible_dso_days=best,
        average_days_delinquent=None if dso is None or best is None else dso - best,
        overdue_ratio=_share(inputs.overdue_ar, inputs.open_ar),
        bad_debt_ratio=_share(inputs.write_offs, sales),
        hold_rate=_share(inputs.decisions.get("hold", 0), inputs.decision_count),
        average_hold_release_hours=_hours(inputs.holds.release_time, inputs.holds.released),
        average_approval_cycle_hours=_hours(
            inputs.approvals.cycle_time, inputs.approvals.completed
        ),
    )


def summarize_holds(answers: Iterable[HoldAnswer], period: Period) -> HoldSummary:
    """Holds and their outcome at the period's end, from rows grouped by hold (decision id),
    each hold's answers in the order they were given.

    A hold is released by its `approvals_needed`-th approving answer, refused by any refusing
    one before that; an answer after the period's end is not known yet at the end.
    """
    placed = released = refused = 0
    release_time = timedelta(0)
    current: int | None = None
    settled = True
    approvals = 0
    for row in answers:
        if row.decision_id != current:
            current, settled, approvals = row.decision_id, False, 0
            placed += 1
        if settled or row.answered_at is None or row.answered_at >= period.end:
            continue
        if not row.approved:
            refused += 1
            settled = True
            continue
        approvals += 1
        if approvals >= row.approvals_needed:
            released += 1
            release_time += row.answered_at - row.held_at
            settled = True
    return HoldSummary(placed, released, refused, placed - released - refused, release_time)


def summarize_approvals(
    tasks: Iterable[tuple[datetime, datetime | None]], period: Period
) -> ApprovalSummary:
    """Approval tasks as (created_at, completed_at): completed by the period's end, or waiting."""
    completed = waiting = 0
    cycle_time = timedelta(0)
    for created_at, completed_at in tasks:
        if completed_at is None or completed_at >= period.end:
            waiting += 1
        else:
            completed += 1
            cycle_time += completed_at - created_at
    return ApprovalSummary(completed, waiting, cycle_time)


# Reads ---------------------------------------------------------------------------------


def _cents(amount: Any) -> ColumnElement[Any]:
    """SUM of a money column in whole cents: exact on both databases (see the module doc)."""
    in_cents = cast(func.round(amount * literal_column("100")), BigInteger)
    return func.coalesce(func.sum(in_cents), 0)


def _money(cents: Any) -> Decimal:
    return (Decimal(int(cents or 0)) / 100).quantize(ZERO)


def receivables_balances(session: Session, currency: str, period: Period) -> ReceivablesInputs:
    """Credit sales, the open AR at the period's end by due date, and the period's write-offs;
    the decisions and approvals are the engine's records, for the caller to add."""
    first, last = period.first_day, period.last_day
    in_currency = Receivable.currency == currency
    sold_cents, items = session.execute(
        select(_cents(Receivable.amount), func.count()).where(
            Receivable.status.in_(SOLD_STATUSES),
            # Read through the (status, due_date) index: an item is never due before its
            # document date (POST /receivables refuses it; an invoice adds the customer's
            # terms), so every item dated in the period is due on or after its first day.
            Receivable.due_date >= first,
            Receivable.doc_date >= first,
            Receivable.doc_date <= last,
            in_currency,
        )
    ).one()
    open_at_end = {True: 0, False: 0}  # overdue at the end: cents
    for overdue in (True, False):
        due = Receivable.due_date < last if overdue else Receivable.due_date >= last
        # The open items now, split by the index's due date so each read is a range of it.
        open_at_end[overdue] += session.scalar(
            select(_cents(Receivable.open_amount)).where(
                Receivable.status == "open", due, Receivable.doc_date <= last, in_currency
            )
        )
    # What was still open at the end and settled since: added back, by its item's due date.
    # Neither payment.paid_on nor write_off.written_off_on is indexed, so these two reads (and
    # the period's write-offs below) visit every settlement; an index on each date would make
    # them ranges from the period's end.
    for settlement, dated in ((Payment, Payment.paid_on), (WriteOff, WriteOff.written_off_on)):
        overdue = Receivable.due_date < last
        rows = session.execute(
            select(overdue, _cents(settlement.amount))
            .join(Receivable, Receivable.id == settlement.receivable_id)
            .where(
                dated > last,
                Receivable.doc_date <= last,
                Receivable.status.in_(SOLD_STATUSES),
                in_currency,
            )
            .group_by(overdue)
        )
        for is_overdue, cents in rows:
            open_at_end[bool(is_overdue)] += cents
    written_off = session.scalar(
        select(_cents(WriteOff.amount))
        .join(Receivable, Receivable.id == WriteOff.receivable_id)
        .where(WriteOff.written_off_on >= first, WriteOff.written_off_on <= last, in_currency)
    )
    return ReceivablesInputs(
        days=period.days,
        credit_sales=_money(sold_cents),
        credit_sales_items=int(items),
        current_ar=_money(open_at_end[False]),
        overdue_ar=_money(open_at_end[True]),
        write_offs=_money(written_off),
    )
