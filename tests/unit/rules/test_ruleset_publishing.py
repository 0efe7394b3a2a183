from __future__ import annotations

import copy
import json
from datetime import date
from typing import Any

import pytest

from rules.conditions import compile_in_subprocess
from rules.errors import RulesetInvalid
from rules.repository import DEFAULTS_DIR, InMemoryRulesetRepository
from rules.service import RulesService


def shipped(key: str) -> dict[str, Any]:
    return json.loads((DEFAULTS_DIR / f"{key}.json").read_text(encoding="utf-8"))


def small_ruleset(rules: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "key": "limits_probe",
        "facts": {"amount": "decimal", "grade": "string"},
        "parameters": {"schema": {"p_max": "decimal"}, "defaults": {"p_max": "10"}},
        "rules": rules,
        "scenarios": [],
    }


def publish_errors(service: RulesService, document: dict[str, Any]) -> list[dict[str, Any]]:
    with pytest.raises(RulesetInvalid) as raised:
        service.publish(document)
    return raised.value.errors


@pytest.mark.parametrize("key", InMemoryRulesetRepository.from_defaults().list_keys())
def test_every_shipped_ruleset_passes_its_scenarios(rules_service: RulesService, key: str) -> None:
    published = rules_service.publish(rules_service.ruleset(key).to_json())
    assert published.version == 2
    assert published.scenarios, f"{key} ships without scenarios"


def test_unknown_fact_in_condition_is_rejected_naming_rule_and_fact(
    rules_service: RulesService,
) -> None:
    document = shipped("credit")
    document["rules"][1]["when"] = {"$gt": {"exposure_total": {"$m": "credit_limit"}}}
    errors = publish_errors(rules_service, document)
    assert errors == [
        {
            "rule_id": "over_limit",
            "fact": "exposure_total",
            "message": "unknown fact 'exposure_total' in condition",
        }
    ]
    assert rules_service.ruleset("credit").version == 1


def test_parameter_of_wrong_type_is_rejected_naming_the_field(
    rules_service: RulesService,
) -> None:
    with pytest.raises(RulesetInvalid) as raised:
        rules_service.set_parameters("credit", {"p_hold_dunning_level": "three"}, date(2027, 1, 1))
    assert raised.value.errors[0]["field"] == "parameters.p_hold_dunning_level"
    document = shipped("credit")
    document["parameters"]["defaults"]["p_overage_n_eyes_pct"] = "twenty"
    assert publish_errors(rules_service, document)[0]["field"] == (
        "parameters.defaults.p_overage_n_eyes_pct"
    )


def test_parameters_that_are_not_an_object_are_rejected_naming_the_field(
    rules_service: RulesService,
) -> None:
    # Found by schemathesis: a list here was a 500 instead of a 400.
    document = shipped("credit")
    document["parameters"] = [document["parameters"]]
    assert {"field": "parameters", "message": "must be an object"} in publish_errors(
        rules_service, document
    )
    assert rules_service.ruleset("credit").version == 1


def test_unknown_parameter_is_rejected(rules_service: RulesService) -> None:
    with pytest.raises(RulesetInvalid) as raised:
        rules_service.set_parameters("credit", {"p_max_days": 3}, date(2027, 1, 1))
    assert raised.value.errors[0]["field"] == "parameters.p_max_days"


def test_bad_outcome_and_duplicate_rule_ids_are_rejected(rules_service: RulesService) -> None:
    document = shipped("credit")
    document["rules"][0]["outcome"] = "block"
    document["rules"].append(copy.deepcopy(document["rules"][1]))
    errors = publish_errors(rules_service, document)
    assert {"rule_id": "over_limit", "message": "duplicate rule id"} in errors
    assert any(e.get("rule_id") == "customer_blocked" and "block" in e["message"] for e in errors)


def test_failing_scenario_blocks_publishing(rules_service: RulesService) -> None:
    document = shipped("credit")
    document["rules"][1]["outcome"] = "warn"
    errors = publish_errors(rules_service, document)
    assert {e["scenario"] for e in errors} >= {"order over limit is held for the credit manager"}
    assert rules_service.ruleset("credit").version == 1


def test_parameters_breaking_a_scenario_are_refused(rules_service: RulesService) -> None:
    with pytest.raises(RulesetInvalid) as raised:
        rules_service.set_parameters("credit", {"p_max_overdue_share_pct": "90"}, date(2027, 1, 1))
    assert raised.value.errors[0]["scenario"] == "high overdue share is held"
    assert len(rules_service._repository.parameter_versions("credit")) == 1


def test_more_than_64_matched_conditions_on_one_field_are_rejected(
    rules_service: RulesService,
) -> None:
    rules = [
        {"id": f"r{i}", "when": {"$gt": {"amount": i}}, "outcome": "warn", "reason": ""}
        for i in range(65)
    ]
    errors = publish_errors(rules_service, small_ruleset(rules))
    assert errors[0]["field"] == "amount"
    assert "65" in errors[0]["message"] and "64" in errors[0]["message"]


def test_many_conditions_that_never_match_together_are_allowed(
    rules_service: RulesService,
) -> None:
    rules = [
        {"id": f"r{i}", "when": {"$eq": {"amount": i}}, "outcome": "warn", "reason": ""}
        for i in range(100)
    ]
    assert rules_service.publish(small_ruleset(rules)).version == 1


def test_more_than_512_distinct_conditions_on_one_field_are_rejected(
    rules_service: RulesService,
) -> None:
    rules = [
        {"id": f"r{i}", "when": {"grade": f"G{i}"}, "outcome": "warn", "reason": ""}
        for i in range(513)
    ]
    errors = publish_errors(rules_service, small_ruleset(rules))
    assert errors == [
        {
            "field": "grade",
            "message": "513 distinct conditions on grade; the engine allows at most 512",
        }
    ]


def test_compile_that_hangs_is_stopped_by_the_timeout() -> None:
    definition = {f"r{i}": {"all": [{"m": {"$gt": {"x": i}}}]} for i in range(513)}
    error = compile_in_subprocess(definition, timeout=2)
    assert error is not None and "did not compile" in error


def test_new_version_number_is_one_above_the_highest(rules_service: RulesService) -> None:
    document = shipped("dunning")
    assert rules_service.publish(document).version == 2
    assert rules_service.publish(document).version == 3
    assert rules_service.ruleset("dunning").version == 3


def test_comparing_a_decimal_with_an_int_is_rejected(rules_service: RulesService) -> None:
    document = shipped("credit")
    document["rules"][1]["when"] = {"$gt": {"checked_exposure": {"$m": "dunning_level"}}}
    assert "cannot compare decimal" in publish_errors(rules_service, document)[0]["message"]


def test_reason_template_may_only_name_facts(rules_service: RulesService) -> None:
    document = shipped("credit")
    document["rules"][0]["reason"] = "blocked {customer_blocked.__class__}"
    assert publish_errors(rules_service, document)[0]["rule_id"] == "customer_blocked"


def _bent(change: str) -> dict[str, Any]:
    document = shipped("credit")
    scenario = document["scenarios"][0]
    if change == "fact type is a list":
        document["facts"]["as_of"] = []
    elif change == "parameter type is an object":
        document["parameters"]["schema"]["p_grace_days"] = {"type": "int"}
    elif change == "rule id is a list":
        document["rules"][0]["id"] = ["over_limit"]
    elif change == "scenario_facts is a list":
        document["scenario_facts"] = [1]
    elif change == "scenario facts is a list":
        scenario["facts"] = [1]
    elif change == "scenario parameters is text":
        scenario["parameters"] = "p_x"
    elif change == "expect is null":
        scenario["expect"] = None
    elif change == "expect.fired holds a list":
        scenario["expect"] = {**scenario["expect"], "fired": [["over_limit"]]}
    return document


@pytest.mark.parametrize(
    "change",
    [
        "fact type is a list",
        "parameter type is an object",
        "rule id is a list",
        "scenario_facts is a list",
        "scenario facts is a list",
        "scenario parameters is text",
        "expect is null",
        "expect.fired holds a list",
    ],
)
def test_a_ruleset_part_of_the_wrong_json_type_is_refused_not_a_crash(
    rules_service: RulesService, change: str
) -> None:
    assert publish_errors(rules_service, _bent(change))
    assert rules_service.ruleset("credit").version == 1
