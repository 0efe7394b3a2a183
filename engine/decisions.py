"""Business rule tasks that name a ruleset: evaluate it, record the decision, set variables.

Facts come from the task's variables: `<key>_facts` if a service gathered them under that
name, else `facts`. `as_of` is the `as_of` variable when present (an ISO date), otherwise the
command's date, so a replay months later sees the same inputs (DESIGN §3).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from engine.runtime.execution import Execution
from engine.store.inserts import insert_loaded
from engine.store.tables import DecisionRecord
from rules.decision import Decision, failed_closed
from rules.errors import RuleEvaluationFailed
from rules.repository import InMemoryRulesetRepository
from rules.service import RulesService


class RulesDecisionMaker:
    def __init__(self, rules: RulesService) -> None:
        self.rules = rules

    @classmethod
    def default(cls) -> RulesDecisionMaker:
        return cls(RulesService(InMemoryRulesetRepository.from_defaults()))

    def knows(self, key: str) -> bool:
        try:
            self.rules.ruleset(key)
        except LookupError:
            return False
        except Exception:
            return False
        return True

    def decide(self, execution: Execution, ruleset_key: str, task: Any) -> None:
        data = task.data
        facts = data.get(f"{ruleset_key}_facts", data.get("facts"))
        if not isinstance(facts, dict):
            raise ValueError(
                f"business rule task needs a '{ruleset_key}_facts' or 'facts' variable (a dict)"
            )
        as_of = data.get("as_of") or execution.now.date()
        as_of = date.fromisoformat(as_of) if isinstance(as_of, str) else as_of
        try:
            decision = self.rules.evaluate(ruleset_key, facts, as_of)
            record = decision.to_record()
        except RuleEvaluationFailed as exc:
            # Fail closed: an engine failure is recorded as a hold, never as a pass.
            version = self.rules.ruleset(ruleset_key).version
            fired = failed_closed(ruleset_key, version, as_of, exc)
            decision = None
            record = {
                "ruleset_key": ruleset_key,
                "ruleset_version": version,
                "parameter_version": 0,
                "as_of": as_of.isoformat(),
                "facts": facts,
                "parameters": {},
                "fired": [fired.to_record()],
                "outcome": "hold",
                "outputs": {},
            }
        row = record_decision(execution, task.task_spec.bpmn_id, record)
        summary = _summary(row.id, record, decision)
        data["decision"] = summary
        data[f"{ruleset_key}_decision"] = summary


def record_decision(
    execution: Execution, element_id: str | None, record: dict[str, Any]
) -> DecisionRecord:
    """Keep an evaluation as a replayable decision record (DESIGN §3) and note it in history."""
    row = store_decision(
        execution.uow.session, record, execution.instance.id, element_id, execution.now
    )
    execution.record(
        "decision",
        element_id,
        ruleset=row.ruleset_key,
        outcome=row.outcome,
        decision_id=row.id,
    )
    return row


def store_decision(
    session: Session,
    record: dict[str, Any],
    instance_id: str | None,
    element_id: str | None,
    now: datetime,
) -> DecisionRecord:
    """The decision row itself, for process tasks and for sweeps outside any process."""
    row = DecisionRecord(
        id=None,
        instance_id=instance_id,
        element_id=element_id,
        ruleset_key=record["ruleset_key"],
        ruleset_version=record["ruleset_version"],
        parameter_version=record["parameter_version"],
        outcome=record["outcome"],
        record=record,
        created_at=now,
    )
    # Written at once: callers need the id now (process variables, history).
    insert_loaded(session, [row])
    return row


def _summary(decision_id: int, record: dict[str, Any], decision: Decision | None) -> dict[str, Any]:
    return {
        "id": decision_id,
        "outcome": record["outcome"],
        "fired": [rule["rule_id"] for rule in record["fired"]],
        "reasons": [rule["reason"] for rule in record["fired"]],
        "outputs": record["outputs"],
        "ruleset_version": record["ruleset_version"],
    }
