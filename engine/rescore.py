"""The nightly credit re-score (DOMAIN §1, "Credit score and grade").

For every customer with receivables, the score inputs are derived from the records as of a day
(`score_input`), the `credit_score` ruleset grades them through the rules service, and the
decision is recorded. The customer's score and grade change; the recommended limit and terms
are kept on the day's `customer_score_run` row, because a credit limit changes only by a
documented credit decision. A downgrade writes an audited `customer_risk_event` and a
`customer.downgraded` outbox event for the ERP.

Each customer is scored in its own transaction, once per day: the unique (customer, day) keys
of the score run and the risk event make a re-run, or a second scheduler, change nothing.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from domain import sales
from domain.customers import Customer, CustomerRiskEvent, CustomerScoreRun
from engine.decisions import store_decision
from engine.errors import NotFound
from engine.runtime.commands import SYSTEM, start_within
from engine.store.tables import OutboxMessage
from rules.credit_score import KEY, ScoreInput, is_downgrade, score_customer

if TYPE_CHECKING:
    from engine.runtime.commands import Runtime
    from engine.store.uow import UnitOfWork
    from rules.credit_score import CreditScore
    from rules.service import RulesService

log = logging.getLogger("flowgate.rescore")

ZERO = Decimal("0.00")
_CENT = Decimal("0.01")
EVENT = "customer.downgraded"
# The credit manager's review of a downgrade (processes/customer_risk_review.bpmn).
REVIEW_PROCESS = "customer_risk_review"


def _settled_on(session: Session, item: sales.Receivable, as_of: date) -> date | None:
    """The day the item was paid in full, if that was on or before `as_of`.

    An ERP item synced already paid, without payments here, counts as paid on its due date: the
    records cannot show it late.
    """
    if item.status != "paid":
        return None
    last = session.scalar(
        select(func.max(sales.Payment.paid_on)).where(sales.Payment.receivable_id == item.id)
    )
    if last is None:
        return item.due_date
    return last if last <= as_of else None


def score_input(session: Session, customer: Customer, as_of: date) -> ScoreInput | None:
    """The score inputs from the records as of a day; None without any receivable to judge."""
    year_ago = as_of - timedelta(days=365)
    items = session.scalars(
        select(sales.Receivable)
        .where(
            sales.Receivable.customer_id == customer.id,
            sales.Receivable.currency == customer.currency,
            sales.Receivable.doc_date <= as_of,
        )
        .order_by(sales.Receivable.id)
    ).all()
    if not items:
        # Nothing to judge: the ERP's grade stands rather than collapsing to "new customer".
        return None
    days_beyond: list[int] = []
    paid = paid_late = 0
    purchases = ZERO
    for item in items:
        if item.doc_date <= year_ago:
            continue
        purchases += item.amount
        settled = _settled_on(session, item, as_of)
        if settled is not None:
            paid += 1
            paid_late += settled > item.due_date
            days_beyond.append(max((settled - item.due_date).days, 0))
        elif item.status != "bad_debt" and item.due_date < as_of:
            # An item still open past its due date counts with the days it is late so far; one
            # written off counts once, as a write-off, not as late for ever.
            days_beyond.append((as_of - item.due_date).days)
    average = (
        (Decimal(sum(days_beyond)) / len(days_beyond)).quantize(_CENT, ROUND_HALF_EVEN)
        if days_beyond
        else ZERO
    )
    first_order = session.scalar(
        select(func.min(sales.SalesOrder.order_date)).where(
            sales.SalesOrder.customer_id == customer.id
        )
    )
    started = min(
        [item.doc_date for item in items] + ([first_order] if first_order is not None else [])
    )
    exposure = sales.open_exposure(session, customer.id, customer.currency, None)
    total_exposure = (
        sum((amount for amount, _ in exposure.open_orders), ZERO)
        + exposure.open_deliveries
        + exposure.invoiced_unposted
        + sum((amount for amount, _ in exposure.open_items), ZERO)
    )
    return ScoreInput(
        customer_id=customer.id,
        avg_days_beyond_terms=average,
        invoices_paid=paid,
        invoices_paid_late=paid_late,
        exposure=total_exposure,
        credit_limit=customer.credit_limit,
        relationship_started_on=started,
        write_offs_24m=sales.write_offs_since(
            session, customer.id, as_of - timedelta(days=730), as_of
        ),
        annual_purchases=purchases,
    )


def rescore_customer(
    runtime: Runtime, rules: RulesService, customer_id: str, as_of: date, now: datetime
) -> str:
    """Score one customer for the day; say 'scored', 'downgraded', 'no_history' or 'unchanged'.

    'unchanged' means it was scored today already (here or by another scheduler).
    """
    with runtime.uow() as uow:
        session = uow.session
        done = session.scalar(
            select(CustomerScoreRun.id).where(
                CustomerScoreRun.customer_id == customer_id, CustomerScoreRun.as_of == as_of
            )
        )
        customer = session.get(Customer, customer_id)
        if done is not None or customer is None:
            return "unchanged"
        inputs = score_input(session, customer, as_of)
        if inputs is None:
            return "no_history"
        result = score_customer(rules, inputs, as_of)
        record = result.decision.to_record()
        decision = store_decision(session, record, None, f"customer:{customer_id}", now)
        previous = customer.grade
        customer.score, customer.grade = result.score, result.grade
        session.add(
            CustomerScoreRun(
                customer_id=customer_id,
                as_of=as_of,
                score=result.score,
                grade=result.grade,
                previous_grade=previous,
                recommended_limit=result.recommended_limit,
                payment_terms=result.payment_terms,
                decision_id=decision.id,
                created_at=now,
            )
        )
        outcome = "scored"
        if is_downgrade(previous, result.grade):
            _downgrade(runtime, uow, customer, previous, result, decision.id, as_of, now)
            outcome = "downgraded"
        try:
            uow.commit()
        except IntegrityError:
            # Another scheduler scored this customer today first; its result stands.
            log.info("re-score of %s lost a race; the other scheduler scored it", customer_id)
            return "unchanged"
        return outcome


def _downgrade(
    runtime: Runtime,
    uow: UnitOfWork,
    customer: Customer,
    previous: str,
    result: CreditScore,
    decision_id: int,
    as_of: date,
    now: datetime,
) -> None:
    session = uow.session
    event = CustomerRiskEvent(
        customer_id=customer.id,
        as_of=as_of,
        kind="downgrade",
        previous_grade=previous,
        grade=result.grade,
        score=result.score,
        decision_id=decision_id,
        created_at=now,
    )
    session.add(event)
    session.flush()
    facts = {
        "customer_id": customer.id,
        "as_of": as_of.isoformat(),
        "previous_grade": previous,
        "grade": result.grade,
        "score": result.score,
        "credit_limit": str(customer.credit_limit),
        "recommended_limit": str(result.recommended_limit),
        "recommended_terms": result.payment_terms,
        "risk_event_id": event.id,
        "decision_id": decision_id,
    }
    session.add(
        OutboxMessage(
            idempotency_key=f"{EVENT}:{customer.id}:{as_of.isoformat()}",
            event_type=EVENT,
            instance_id=None,
            payload=facts,
            next_attempt_at=now,
            created_at=now,
        )
    )
    _open_review(runtime, uow, facts)


def _open_review(runtime: Runtime, uow: UnitOfWork, facts: dict[str, object]) -> None:
    """The credit manager's task for a downgrade (DOMAIN §1), in the downgrade's transaction:
    a committed downgrade always has its review, and a failed one leaves neither."""
    business_key = f"{facts['customer_id']}:{facts['as_of']}"
    try:
        start_within(runtime, uow, REVIEW_PROCESS, business_key, {"risk": facts}, SYSTEM)
    except NotFound:
        # Deployed from processes/ at start-up; a store without it still records the event.
        log.warning(
            "no '%s' process is deployed: %s has no review task", REVIEW_PROCESS, business_key
        )


def rescore_customers(
    runtime: Runtime, rules: RulesService, as_of: date | None = None
) -> dict[str, int]:
    """Re-score every customer as of a day (the runtime's today); count the outcomes."""
    now = runtime.clock()
    as_of = as_of or now.date()
    rules.ruleset(KEY)  # fail the whole run early if the ruleset is missing
    with runtime.uow(write=False) as uow:
        ids = uow.session.scalars(select(Customer.id).order_by(Customer.id)).all()
    outcomes: Counter[str] = Counter()
    for customer_id in ids:
        try:
            outcomes[rescore_customer(runtime, rules, customer_id, as_of, now)] += 1
        except Exception:
            # One customer's bad data must not stop the others; tomorrow's run retries it.
            log.exception("re-score of customer %s failed", customer_id)
            outcomes["failed"] += 1
    log.info("credit re-score as of %s: %s", as_of, dict(outcomes))
    return dict(outcomes)
