"""Receivables KPIs for credit management (DOMAIN §1): each figure with the inputs behind it.

`GET /api/v1/reports/receivables?from=YYYY-MM-DD&to=YYYY-MM-DD&currency=CNY`. The figures and
their definitions are domain/kpis.py's; the credit decisions and approval tasks they count are
the engine's records, read here through their (ruleset, created_at) and (status, created_at)
indexes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from flask import Blueprint, request
from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from api.errors import BadRequest
from api.receivables import ISO_4217
from api.requests import refused, runtime
from domain import kpis
from domain.errors import InvalidInput
from domain.fields import date_at
from domain.sales import HoldRelease, SalesOrder
from engine.handlers.o2c import APPROVAL_TASK, SECOND_APPROVAL_TASK
from engine.store.tables import DecisionRecord, HumanTask
from rules.credit import KEY as CREDIT
from rules.model import OUTCOMES

bp = Blueprint("reports", __name__, url_prefix="/api/v1/reports")

DEFAULT_CURRENCY = "CNY"

FORMULAS = {
    "dso_days": "open_ar / credit_sales * days",
    "best_possible_dso_days": "current_ar / credit_sales * days",
    "average_days_delinquent": "dso_days - best_possible_dso_days",
    "overdue_ratio": "overdue_ar / open_ar",
    "bad_debt_ratio": "write_offs / credit_sales",
    "hold_rate": "decisions.hold / decisions.total",
    "average_hold_release_hours": "holds.release_hours_total / holds.released",
    "average_approval_cycle_hours": "approval_tasks.cycle_hours_total / approval_tasks.completed",
}


@bp.get("/receivables")
def receivables_kpis():
    period = _period()
    currency = request.args.get("currency", DEFAULT_CURRENCY)
    if not ISO_4217.fullmatch(currency):
        raise refused("currency", "must be a three-letter ISO 4217 code such as CNY")
    with runtime().uow(write=False) as uow:
        inputs = dataclasses.replace(
            kpis.receivables_balances(uow.session, currency, period),
            decisions=_credit_decisions(uow.session, currency, period),
            holds=kpis.summarize_holds(_hold_answers(uow.session, currency, period), period),
            approvals=kpis.summarize_approvals(
                _approval_tasks(uow.session, currency, period), period
            ),
        )
    figures = kpis.receivables_kpis(inputs)
    return {
        "period": {"from": period.first_day.isoformat(), "to": period.last_day.isoformat()},
        "currency": currency,
        "figures": {name: _text(value) for name, value in dataclasses.asdict(figures).items()},
        "inputs": _inputs_as_dict(inputs),
        "formulas": FORMULAS,
    }


def _period() -> kpis.Period:
    """`from` and `to` as a period of at most a year that ends today at the latest."""
    first, last = _day_arg("from"), _day_arg("to")
    if last < first:
        raise refused("to", "must not be before from")
    period = kpis.Period(first, last)
    if period.days > kpis.MAX_PERIOD_DAYS:
        raise refused("to", f"must be at most {kpis.MAX_PERIOD_DAYS} days from 'from' (both count)")
    today = runtime().clock().date()
    if last > today:
        # Sales and payments after today are not known yet: the figures would be understated.
        raise refused("to", f"must not be after today ({today.isoformat()})")
    return period


def _day_arg(name: str) -> date:
    value = request.args.get(name)
    if not value:
        raise BadRequest(f"'{name}' is required", [{"field": name, "message": "is required"}])
    try:
        return date_at(value, name)
    except InvalidInput as exc:
        raise BadRequest(
            f"'{name}' {exc.message}", [{"field": name, "message": exc.message}]
        ) from None


def _text(value: Decimal | None) -> str | None:
    return None if value is None else str(value)


def _inputs_as_dict(inputs: kpis.ReceivablesInputs) -> dict[str, Any]:
    holds, approvals = inputs.holds, inputs.approvals
    return {
        "days": inputs.days,
        "credit_sales": str(inputs.credit_sales),
        "credit_sales_items": inputs.credit_sales_items,
        "open_ar": str(inputs.open_ar),
        "current_ar": str(inputs.current_ar),
        "overdue_ar": str(inputs.overdue_ar),
        "write_offs": str(inputs.write_offs),
        "decisions": {
            "total": inputs.decision_count,
            **{outcome: inputs.decisions.get(outcome, 0) for outcome in OUTCOMES},
        },
        "holds": {
            "placed": holds.placed,
            "released": holds.released,
            "refused": holds.refused,
            "not_released": holds.not_released,
            "release_hours_total": str(kpis.hours(holds.release_time)),
        },
        "approval_tasks": {
            "completed": approvals.completed,
            "waiting": approvals.waiting,
            "cycle_hours_total": str(kpis.hours(approvals.cycle_time)),
        },
    }


# The engine's records, per currency through the order of the instance that made them.


def _credit_decisions(session: Session, currency: str, period: kpis.Period) -> dict[str, int]:
    rows = session.execute(
        select(DecisionRecord.outcome, func.count())
        .join(SalesOrder, SalesOrder.instance_id == DecisionRecord.instance_id)
        .where(
            DecisionRecord.ruleset_key == CREDIT,
            DecisionRecord.created_at >= period.start,
            DecisionRecord.created_at < period.end,
            SalesOrder.currency == currency,
        )
        .group_by(DecisionRecord.outcome)
    )
    return {outcome: int(count) for outcome, count in rows}


def _hold_answers(
    session: Session, currency: str, period: kpis.Period
) -> Iterator[kpis.HoldAnswer]:
    """Each credit hold of the period with the approvers' answers to it (credit_approval)."""
    two_approvers = DecisionRecord.record["outputs"]["n_eyes"].as_boolean()
    rows = session.execute(
        select(
            DecisionRecord.id,
            DecisionRecord.created_at,
            two_approvers,
            HoldRelease.released_at,
            HoldRelease.approved,
        )
        .join(SalesOrder, SalesOrder.instance_id == DecisionRecord.instance_id)
        .outerjoin(
            HoldRelease,
            and_(
                HoldRelease.order_no == SalesOrder.order_no,
                HoldRelease.decision_id == DecisionRecord.id,
                HoldRelease.kind == "credit",
            ),
        )
        .where(
            DecisionRecord.ruleset_key == CREDIT,
            DecisionRecord.outcome == "hold",
            DecisionRecord.created_at >= period.start,
            DecisionRecord.created_at < period.end,
            SalesOrder.currency == currency,
        )
        .order_by(DecisionRecord.id, HoldRelease.id)
    )
    for decision_id, held_at, n_eyes_hold, answered_at, approved in rows:
        needed = 2 if n_eyes_hold else 1
        yield kpis.HoldAnswer(decision_id, held_at, needed, answered_at, approved)


def _approval_tasks(
    session: Session, currency: str, period: kpis.Period
) -> Iterator[tuple[datetime, datetime | None]]:
    """The credit approval tasks created in the period, open or completed (not cancelled)."""
    rows = session.execute(
        select(HumanTask.created_at, HumanTask.completed_at)
        .join(SalesOrder, SalesOrder.instance_id == HumanTask.instance_id)
        .where(
            HumanTask.status.in_(("open", "completed")),
            HumanTask.created_at >= period.start,
            HumanTask.created_at < period.end,
            HumanTask.element_id.in_((APPROVAL_TASK, SECOND_APPROVAL_TASK)),
            SalesOrder.currency == currency,
        )
    )
    yield from rows
