"""Decisions: the fired rules, the outcome policy and the auditable record (DESIGN §3)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from rules.model import OUTCOMES

_SEVERITY = {outcome: rank for rank, outcome in enumerate(OUTCOMES)}


def most_severe(outcomes: Iterable[str]) -> str:
    """pass < warn < hold < reject; nothing fired is a pass."""
    return max(outcomes, key=_SEVERITY.__getitem__, default="pass")


@dataclass(frozen=True, slots=True)
class FiredRule:
    rule_id: str
    outcome: str
    reason: str
    priority: int
    emit: Mapping[str, Any] = field(default_factory=dict)

    def to_record(self) -> dict[str, Any]:
        return {
            "rule_id": self.rule_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "priority": self.priority,
            "emit": dict(self.emit),
        }


@dataclass(frozen=True, slots=True)
class Decision:
    ruleset_key: str
    ruleset_version: int
    parameter_version: int
    as_of: date
    facts: Mapping[str, Any]
    parameters: Mapping[str, Any]
    fired: tuple[FiredRule, ...]
    # JSON forms of facts and parameters, kept so the record needs no type information.
    facts_json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)
    parameters_json: Mapping[str, Any] = field(repr=False, compare=False, default_factory=dict)

    @property
    def outcome(self) -> str:
        return most_severe(rule.outcome for rule in self.fired)

    @property
    def outputs(self) -> dict[str, Any]:
        """What the fired rules emit, merged in firing order: a later rule's key wins."""
        merged: dict[str, Any] = {}
        for rule in self.fired:
            merged.update(rule.emit)
        return merged

    @property
    def fired_ids(self) -> list[str]:
        return [rule.rule_id for rule in self.fired]

    def to_record(self) -> dict[str, Any]:
        return {
            "ruleset_key": self.ruleset_key,
            "ruleset_version": self.ruleset_version,
            "parameter_version": self.parameter_version,
            "as_of": self.as_of.isoformat(),
            "facts": dict(self.facts_json),
            "parameters": dict(self.parameters_json),
            "fired": [rule.to_record() for rule in self.fired],
            "outcome": self.outcome,
            "outputs": self.outputs,
        }


def failed_closed(key: str, version: int, as_of: date, error: Exception) -> FiredRule:
    """The rule result a caller records when evaluation failed: a hold, never a pass."""
    return FiredRule(
        rule_id="evaluation_failed",
        outcome="hold",
        reason=f"Rules {key}@{version} could not be evaluated on {as_of.isoformat()}: {error}",
        priority=0,
    )
