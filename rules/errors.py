"""Domain exceptions of the rules package; `api/` maps them to problem+json once."""

from __future__ import annotations

from typing import Any


class RulesError(Exception):
    """Base class for every error the rules package raises on purpose."""


class UnknownRuleset(RulesError):
    """No ruleset (or no such version) is stored under the key."""


class NoParametersInForce(RulesError):
    """No parameter version of a ruleset is effective at the requested date."""


class FactsInvalid(RulesError):
    """The facts handed to an evaluation do not match the ruleset's declared facts."""

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{e['field']}: {e['message']}" for e in errors))


class RulesetInvalid(RulesError):
    """A ruleset or parameter version failed validation, engine limits or its scenarios.

    `errors` is a list of `{"rule_id" | "field" | "scenario": ..., "message": ...}` (rules/README).
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        self.errors = errors
        super().__init__("; ".join(_describe(e) for e in errors))


class RuleEvaluationFailed(RulesError):
    """The engine raised, or an action failed inside it: callers must fail closed (hold)."""


def _describe(error: dict[str, Any]) -> str:
    where = next((f"{k} {error[k]}" for k in ("rule_id", "field", "scenario") if k in error), "")
    return f"{where}: {error['message']}" if where else str(error["message"])
