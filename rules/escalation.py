"""Escalation of waiting tasks and holds, and dunning levels (shared DOMAIN §1, DESIGN §2).

Ages are counted in business days (weekends and the holiday calendar parameter are off) from an
explicit `as_of`, never the clock; the rulesets `escalation` and `dunning` decide on the ages.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, timedelta

from rules.decision import Decision
from rules.service import RulesService

ESCALATION_KEY = "escalation"
DUNNING_KEY = "dunning"
_SATURDAY = 5


@dataclass(frozen=True)
class WaitingItem:
    """A user task or a hold waiting for someone, with its SLA and escalations made so far."""

    opened_on: date
    sla_business_days: int
    level: int  # 0 none, 1 assignee reminded, 2 escalated, 3 process owner notified
    escalate_to: str


@dataclass(frozen=True)
class EscalationStep:
    level: int
    remind_assignee: bool
    escalate_to: str | None
    notify_process_owner: bool
    decision: Decision


@dataclass(frozen=True)
class DunningStep:
    level: int
    collections_task: bool
    decision: Decision


def business_days_between(start: date, end: date, holidays: Collection[date] = ()) -> int:
    """Business days after `start` up to and including `end` (0 when end <= start)."""
    days = 0
    current = start
    while current < end:
        current += timedelta(days=1)
        if current.weekday() < _SATURDAY and current not in holidays:
            days += 1
    return days


def decide_escalation(rules: RulesService, item: WaitingItem, as_of: date) -> EscalationStep:
    """One step per SLA multiple: remind at 1x, escalate at 2x, notify the owner at 3x.

    Each level happens once: the item's recorded level keeps a step from repeating.
    """
    if item.sla_business_days < 1:
        raise ValueError("an SLA must be at least one business day")
    _, parameters = rules.parameters(ESCALATION_KEY, as_of)
    age = business_days_between(item.opened_on, as_of, frozenset(parameters["p_holidays"]))
    facts = {
        "age_business_days": age,
        "sla_business_days": item.sla_business_days,
        "sla_multiple": age // item.sla_business_days,
        "level": item.level,
        "escalate_to": item.escalate_to,
    }
    decision = rules.evaluate(ESCALATION_KEY, facts, as_of)
    outputs = decision.outputs
    escalated = outputs.get("escalate", False)
    return EscalationStep(
        level=max(item.level, outputs.get("level", item.level)),
        remind_assignee=outputs.get("remind_assignee", False),
        escalate_to=item.escalate_to if escalated else None,
        notify_process_owner=outputs.get("notify_process_owner", False),
        decision=decision,
    )


def decide_dunning(rules: RulesService, days_past_due: int, as_of: date) -> DunningStep:
    """Dunning level from days past due; level 4 hands the account to collections."""
    decision = rules.evaluate(DUNNING_KEY, {"days_past_due": days_past_due}, as_of)
    outputs = decision.outputs
    return DunningStep(
        level=outputs.get("dunning_level", 0),
        collections_task=outputs.get("collections_task", False),
        decision=decision,
    )
