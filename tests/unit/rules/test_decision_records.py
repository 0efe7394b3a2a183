from __future__ import annotations

import json
from datetime import date
from decimal import Decimal

from rules.credit import CreditInput, OpenItem, check_credit
from rules.repository import InMemoryRulesetRepository
from rules.service import RulesService

AS_OF = date(2026, 11, 23)
CREDIT = CreditInput(
    customer_id="C-7",
    currency="EUR",
    order_value=Decimal("2500.005"),
    credit_limit=Decimal("10000"),
    next_review_on=date(2026, 1, 31),
    open_items=(OpenItem(Decimal("9000.10"), date(2026, 8, 1)),),
    licence_expires_on=date(2030, 1, 1),
    dunning_level=3,
    grade="B",  # a graded customer: N and C are held for review on every order
)


def test_record_is_json_with_decimals_as_strings_and_iso_dates(
    rules_service: RulesService,
) -> None:
    record = check_credit(rules_service, CREDIT, AS_OF).to_record()
    assert json.loads(json.dumps(record)) == record
    assert record["facts"]["order_value"] == "2500.005"
    assert record["facts"]["next_review_on"] == "2026-01-31"
    assert record["parameters"]["p_overage_n_eyes_pct"] == "20"
    assert record["ruleset_key"] == "credit" and record["ruleset_version"] == 1
    assert record["parameter_version"] == 1 and record["as_of"] == "2026-11-23"
    assert record["outcome"] == "hold"
    assert [f["rule_id"] for f in record["fired"]] == [
        "over_limit",
        "oldest_open_item",
        "overdue_share",
        "dunning_level",
        "review_overdue",
    ]


def test_reevaluating_a_record_reproduces_it_exactly(rules_service: RulesService) -> None:
    decision = check_credit(rules_service, CREDIT, AS_OF)
    record = json.loads(json.dumps(decision.to_record()))
    again = rules_service.reevaluate(record)
    assert again == decision
    assert again.to_record() == record


def test_reevaluation_uses_recorded_version_and_parameters_after_changes(
    rules_service: RulesService,
) -> None:
    record = json.loads(json.dumps(check_credit(rules_service, CREDIT, AS_OF).to_record()))
    document = rules_service.ruleset("credit").to_json()
    document["rules"] = [r for r in document["rules"] if r["id"] != "review_overdue"]
    document["scenarios"] = [s for s in document["scenarios"] if "review" not in s["name"]]
    rules_service.publish(document)
    rules_service.set_parameters("credit", {"p_hold_dunning_level": 4}, date(2026, 1, 1))
    assert rules_service.reevaluate(record).to_record() == record
    assert check_credit(rules_service, CREDIT, AS_OF).to_record() != record


def test_reevaluation_works_from_a_fresh_process_store() -> None:
    first = RulesService(InMemoryRulesetRepository.from_defaults())
    record = json.loads(json.dumps(check_credit(first, CREDIT, AS_OF).to_record()))
    second = RulesService(InMemoryRulesetRepository.from_defaults())
    assert second.reevaluate(record).to_record() == record


def test_replay_counts_decisions_a_tighter_limit_would_change(
    rules_service: RulesService,
) -> None:
    records = [
        check_credit(rules_service, CREDIT, AS_OF).to_record(),
        check_credit(
            rules_service,
            CreditInput(
                "C-8",
                "EUR",
                Decimal("10"),
                Decimal("5000"),
                date(2027, 1, 1),
                licence_expires_on=date(2030, 1, 1),
                dunning_level=2,
                grade="B",
            ),
            AS_OF,
        ).to_record(),
    ]
    report = rules_service.replay("credit", {"p_hold_dunning_level": 2}, records)
    assert report["total"] == 2 and report["changed"] == 1
    assert report["examples"][0]["outcome_before"] == "pass"
    assert report["examples"][0]["outcome_after"] == "hold"
    candidate = rules_service.ruleset("credit").to_json()
    assert rules_service.replay("credit", candidate, records)["changed"] == 0
