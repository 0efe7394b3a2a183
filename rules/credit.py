"""Credit check facts at order entry and before goods issue (shared DOMAIN §1).

Exposure and ageing are derived here from an explicit `as_of`, never the clock (DESIGN §3);
the `credit` ruleset decides on the derived facts, one rule per DOMAIN §1 check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from rules.decision import Decision
from rules.service import RulesService
from rules.values import percent_ceiling

KEY = "credit"
ZERO = Decimal(0)
# A zero limit makes any overage unbounded; this stands in for "infinitely many percent".
UNBOUNDED_OVERAGE_PCT = Decimal(1_000_000)


@dataclass(frozen=True)
class OpenOrder:
    """Approved, not yet shipped."""

    amount: Decimal
    ship_date: date


@dataclass(frozen=True)
class OpenItem:
    """An unpaid invoice, net of partial payments."""

    amount: Decimal
    due_date: date


@dataclass(frozen=True)
class CreditInput:
    """One customer's credit account in one currency, plus the order being checked."""

    customer_id: str
    currency: str
    order_value: Decimal
    credit_limit: Decimal
    next_review_on: date
    open_orders: tuple[OpenOrder, ...] = ()
    open_deliveries: Decimal = ZERO
    invoiced_not_posted: Decimal = ZERO
    open_items: tuple[OpenItem, ...] = ()
    customer_blocked: bool = False
    licence_expires_on: date | None = None
    dunning_level: int = 0
    grade: str = "N"


@dataclass(frozen=True)
class CreditRelease:
    """A documented release of a credit hold at order entry."""

    order_value: Decimal
    released_on: date


def credit_facts(credit: CreditInput, as_of: date, parameters: Mapping[str, Any]) -> dict:
    """Derive the `credit` ruleset's facts with the parameters in force at `as_of`."""
    open_orders = sum((o.amount for o in credit.open_orders), ZERO)
    receivables = sum((i.amount for i in credit.open_items), ZERO)
    # The four exposure buckets plus the order being checked (DOMAIN §1).
    static_exposure = (
        open_orders
        + credit.open_deliveries
        + credit.invoiced_not_posted
        + receivables
        + credit.order_value
    )
    horizon = as_of + timedelta(days=parameters["p_dynamic_horizon_days"])
    beyond_horizon = sum((o.amount for o in credit.open_orders if o.ship_date > horizon), ZERO)
    dynamic_exposure = static_exposure - beyond_horizon
    checked = dynamic_exposure if parameters["p_exposure_check"] == "dynamic" else static_exposure
    return {
        "as_of": as_of,
        "currency": credit.currency,
        "order_value": credit.order_value,
        "credit_limit": credit.credit_limit,
        "static_exposure": static_exposure,
        "dynamic_exposure": dynamic_exposure,
        "checked_exposure": checked,
        "overage_pct": _overage_pct(checked - credit.credit_limit, credit.credit_limit),
        "customer_blocked": credit.customer_blocked,
        "licence_valid": credit.licence_expires_on is not None
        and credit.licence_expires_on >= as_of,
        "oldest_item_days_past_due": _oldest_item_days(credit, as_of, parameters),
        "overdue_share_pct": _overdue_share_pct(credit, as_of, parameters, receivables),
        "dunning_level": credit.dunning_level,
        "next_review_on": credit.next_review_on,
        "grade": credit.grade,
    }


def check_credit(rules: RulesService, credit: CreditInput, as_of: date) -> Decision:
    """Run the credit check for an order as of a business date."""
    return rules.evaluate_derived(
        KEY, as_of, lambda parameters: credit_facts(credit, as_of, parameters)
    )


def release_still_valid(
    release: CreditRelease,
    order_value: Decimal,
    goods_issue_on: date,
    parameters: Mapping[str, Any],
) -> bool:
    """An order-entry release holds at goods issue unless the order grew or waited too long.

    DOMAIN §1: valid if the value grew by at most 5 % and goods issue is within 14 days.
    """
    allowed = release.order_value * (1 + parameters["p_recheck_max_growth_pct"] / 100)
    waited = (goods_issue_on - release.released_on).days
    return order_value <= allowed and waited <= parameters["p_recheck_within_days"]


def _overage_pct(overage: Decimal, limit: Decimal) -> Decimal:
    if overage <= 0:
        return ZERO
    if limit <= 0:
        return UNBOUNDED_OVERAGE_PCT
    return percent_ceiling(overage, limit)


def _oldest_item_days(credit: CreditInput, as_of: date, parameters: Mapping[str, Any]) -> int:
    # SAP oldest-open-item check; small items are ignored (DOMAIN §1).
    counted = [i for i in credit.open_items if i.amount >= parameters["p_min_item_amount"]]
    return max((max((as_of - i.due_date).days, 0) for i in counted), default=0)


def _overdue_share_pct(
    credit: CreditInput, as_of: date, parameters: Mapping[str, Any], receivables: Decimal
) -> Decimal:
    if receivables <= 0:
        return ZERO
    days = parameters["p_overdue_share_days"]
    overdue = sum((i.amount for i in credit.open_items if (as_of - i.due_date).days > days), ZERO)
    return percent_ceiling(overdue, receivables)
