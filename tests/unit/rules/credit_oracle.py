"""An independent plain-Python statement of the DOMAIN §1 credit checks.

Written straight from the domain text with exact arithmetic (no scaled integers, no percent
rounding), so the host, the encoding and the derivation in `rules.credit` are checked against it.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from rules.credit import CreditInput, OpenItem, OpenOrder

_RANK = {"pass": 0, "warn": 1, "hold": 2, "reject": 3}
_OUTCOME = {
    "customer_blocked": "reject",
    "over_limit": "hold",
    "over_limit_n_eyes": "hold",
    "licence_invalid": "hold",
    "oldest_open_item": "hold",
    "overdue_share": "hold",
    "dunning_level": "hold",
    "grade_d_prepayment": "hold",
    "grade_review": "hold",
    "review_overdue": "warn",
}


def credit_checks(credit: CreditInput, as_of: date, p: Mapping[str, Any]) -> tuple[str, list[str]]:
    """Return (outcome, fired check ids in priority order)."""
    receivables = sum((i.amount for i in credit.open_items), Decimal(0))
    exposure = (
        sum((o.amount for o in credit.open_orders), Decimal(0))
        + credit.open_deliveries
        + credit.invoiced_not_posted
        + receivables
        + credit.order_value
    )
    if p["p_exposure_check"] == "dynamic":
        horizon = as_of + timedelta(days=p["p_dynamic_horizon_days"])
        exposure -= sum((o.amount for o in credit.open_orders if o.ship_date > horizon), Decimal(0))
    fired = []
    if credit.customer_blocked:
        fired.append("customer_blocked")
    overage = exposure - credit.credit_limit
    if overage > 0:
        fired.append("over_limit")
        if overage * 100 > credit.credit_limit * p["p_overage_n_eyes_pct"]:
            fired.append("over_limit_n_eyes")
    if credit.licence_expires_on is None or credit.licence_expires_on < as_of:
        fired.append("licence_invalid")
    if any(
        i.amount >= p["p_min_item_amount"]
        and (as_of - i.due_date).days > p["p_max_oldest_item_days"]
        for i in credit.open_items
    ):
        fired.append("oldest_open_item")
    overdue = sum(
        (
            i.amount
            for i in credit.open_items
            if (as_of - i.due_date).days > p["p_overdue_share_days"]
        ),
        Decimal(0),
    )
    if receivables > 0 and overdue * 100 > receivables * p["p_max_overdue_share_pct"]:
        fired.append("overdue_share")
    if credit.dunning_level >= p["p_hold_dunning_level"]:
        fired.append("dunning_level")
    if credit.grade == "D":
        fired.append("grade_d_prepayment")
    if credit.grade in ("C", "N"):  # "every order is reviewed"; N is treated as C
        fired.append("grade_review")
    if credit.next_review_on < as_of:
        fired.append("review_overdue")
    outcome = max((_OUTCOME[f] for f in fired), key=_RANK.__getitem__, default="pass")
    return outcome, fired


def random_money(rng: random.Random, high: int) -> Decimal:
    return Decimal(rng.randint(0, high * 100)) / 100


def random_credit(rng: random.Random, as_of: date) -> CreditInput:
    def near(days: int) -> date:
        return as_of + timedelta(days=rng.randint(-days, days))

    return CreditInput(
        customer_id=f"C-{rng.randint(1, 999)}",
        currency="EUR",
        order_value=random_money(rng, 5_000),
        credit_limit=random_money(rng, 30_000),
        next_review_on=near(40),
        open_orders=tuple(
            OpenOrder(random_money(rng, 4_000), near(60)) for _ in range(rng.randint(0, 3))
        ),
        open_deliveries=random_money(rng, 3_000),
        invoiced_not_posted=random_money(rng, 2_000),
        open_items=tuple(
            OpenItem(random_money(rng, 300 if rng.random() < 0.3 else 6_000), near(90))
            for _ in range(rng.randint(0, 4))
        ),
        customer_blocked=rng.random() < 0.05,
        licence_expires_on=None if rng.random() < 0.05 else near(400),
        dunning_level=rng.choice([0, 0, 0, 1, 2, 3, 4]),
        grade=rng.choice("ABBCCDN"),
    )
