"""Rulesets and decisions over HTTP, stored in a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from sqlalchemy import func, select

from api.app import create_app
from api.bootstrap import Container
from engine.definitions.compile import SourceFile
from engine.runtime import commands
from engine.store.tables import DecisionRecord, Instance, ParameterVersion, RulesetVersion
from rules.repository import DEFAULTS_DIR
from tests.conftest import FIXTURES
from tests.integration.conftest import ERP, make_container

CREDIT_FACTS = {
    "as_of": "2026-11-23",
    "currency": "EUR",
    "order_value": "1000.00",
    "credit_limit": "50000.00",
    "static_exposure": "21000.00",
    "dynamic_exposure": "21000.00",
    "checked_exposure": "21000.00",
    "overage_pct": "0",
    "customer_blocked": False,
    "licence_valid": True,
    "oldest_item_days_past_due": 0,
    "overdue_share_pct": "0",
    "dunning_level": 0,
    "next_review_on": "2027-03-31",
    "grade": "B",
}
LARGE_ORDER_RULE = {
    "id": "large_order",
    "priority": 90,
    "when": {"$gt": {"order_value": "100000.00"}},
    "outcome": "warn",
    "reason": "Order value {order_value} {currency} is above 100000.00",
}


@pytest.fixture
def client(container: Container) -> FlaskClient:
    return create_app(container=container).test_client()


@pytest.fixture
def tokens(container: Container) -> dict[str, dict[str, str]]:
    def bearer(user: str, roles: list[str]) -> dict[str, str]:
        return {"Authorization": f"Bearer {container.tokens.issue(user, roles, [])}"}

    return {
        "analyst": bearer("ana", ["analyst"]),
        "auditor": bearer("audrey", ["auditor"]),
        "erp": bearer("key:erp", ["erp_system"]),
    }


def credit_document(
    *extra_rules: dict[str, Any], scenarios: tuple[dict[str, Any], ...] = ()
) -> dict[str, Any]:
    document = json.loads((DEFAULTS_DIR / "credit.json").read_text(encoding="utf-8"))
    document["rules"] += list(extra_rules)
    document["scenarios"] += list(scenarios)
    return document


def large_order_scenario(expect: str) -> dict[str, Any]:
    fired = ["large_order"] if expect == "warn" else []
    return {
        "name": "very large order warns",
        "as_of": "2026-11-23",
        "facts": {"order_value": "150000.00"},
        "expect": {"outcome": expect, "fired": fired},
    }


def evaluate(client: FlaskClient, headers: dict[str, str], as_of: str, **facts: Any) -> dict:
    response = client.post(
        "/api/v1/rulesets/credit/evaluate",
        json={"facts": {**CREDIT_FACTS, **facts}, "as_of": as_of},
        headers=headers,
    )
    assert response.status_code == 200, response.json
    return response.json


def stored_versions(container: Container, table: type, key: str = "credit") -> list[int]:
    with container.runtime.uow(write=False) as uow:
        return list(
            uow.session.execute(
                select(table.version).where(table.key == key).order_by(table.version)
            ).scalars()
        )


def decision_count(container: Container) -> int:
    with container.runtime.uow(write=False) as uow:
        return uow.session.execute(select(func.count()).select_from(DecisionRecord)).scalar_one()


@pytest.fixture
def credit_process(container: Container) -> Container:
    source = SourceFile("credit_check.bpmn", (FIXTURES / "credit_check.bpmn").read_bytes())
    with container.runtime.uow() as uow:
        container.runtime.catalog.deploy(uow, [source], "test")
        uow.commit()
    return container


def start_order(container: Container, order_no: str, **facts: Any) -> dict[str, Any]:
    variables = {"credit_facts": {**CREDIT_FACTS, **facts}, "as_of": "2026-11-23"}
    return commands.start(container.runtime, "credit_check", order_no, variables, ERP).body


def test_shipped_rulesets_are_listed_as_version_1(client, tokens):
    response = client.get("/api/v1/rulesets", headers=tokens["auditor"])
    assert response.status_code == 200
    credit = next(item for item in response.json["items"] if item["key"] == "credit")
    assert credit["version"] == 1 and credit["parameter_version"] == 1
    detail = client.get("/api/v1/rulesets/credit", headers=tokens["auditor"]).json
    assert "over_limit" in [rule["id"] for rule in detail["rules"]]
    assert detail["parameters"]["values"]["p_overage_n_eyes_pct"] == "20"
    assert detail["scenarios"][0]["name"] == "good customer within limit passes"


def test_published_threshold_is_active_and_survives_a_new_container(
    client, tokens, container, database_url, tmp_path: Path
):
    document = credit_document(LARGE_ORDER_RULE, scenarios=(large_order_scenario("warn"),))
    response = client.post(
        "/api/v1/rulesets/credit/versions", json=document, headers=tokens["analyst"]
    )
    assert response.status_code == 201, response.json
    assert response.json["version"] == 2
    decision = evaluate(client, tokens["auditor"], "2026-11-23", order_value="150000.00")
    assert (decision["outcome"], decision["ruleset_version"]) == ("warn", 2)
    assert decision["fired_ids"] == ["large_order"]

    restarted = make_container(database_url, tmp_path / "restart")
    try:
        again = create_app(container=restarted).test_client()
        detail = again.get("/api/v1/rulesets/credit", headers=tokens["auditor"]).json
        assert detail["version"] == 2
        assert [v["published_by"] for v in detail["versions"]][-1] == "ana"
        decision = evaluate(again, tokens["auditor"], "2026-11-23", order_value="150000.00")
        assert (decision["outcome"], decision["fired_ids"]) == ("warn", ["large_order"])
    finally:
        restarted.close()


def test_failing_scenario_is_listed_and_nothing_is_published(client, tokens, container):
    document = credit_document(LARGE_ORDER_RULE, scenarios=(large_order_scenario("pass"),))
    response = client.post(
        "/api/v1/rulesets/credit/versions", json=document, headers=tokens["analyst"]
    )
    assert response.status_code == 422
    assert response.mimetype == "application/problem+json"
    assert {"scenario": "very large order warns"}.items() <= response.json["errors"][0].items()
    assert stored_versions(container, RulesetVersion) == [1]
    detail = client.get("/api/v1/rulesets/credit", headers=tokens["auditor"]).json
    assert detail["version"] == 1


def test_unknown_fact_in_a_condition_names_the_rule_and_fact(client, tokens, container):
    broken = {**LARGE_ORDER_RULE, "when": {"$gt": {"order_total": "100000.00"}}}
    response = client.post(
        "/api/v1/rulesets/credit/versions", json=credit_document(broken), headers=tokens["analyst"]
    )
    assert response.status_code == 422
    [error] = response.json["errors"]
    assert (error["rule_id"], error["fact"]) == ("large_order", "order_total")
    assert stored_versions(container, RulesetVersion) == [1]


def test_wrong_parameter_type_names_the_field_and_stores_nothing(client, tokens, container):
    response = client.put(
        "/api/v1/rulesets/credit/parameters",
        json={"values": {"p_max_oldest_item_days": "ninety"}, "effective_from": "2027-01-01"},
        headers=tokens["analyst"],
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["values.p_max_oldest_item_days"]
    assert stored_versions(container, ParameterVersion) == [1]


def test_a_parameter_outside_its_choices_names_the_field_and_stores_nothing(
    client, tokens, container
):
    """ "bogus" for the exposure check was stored, and every credit check then quietly used the
    static exposure."""
    response = client.put(
        "/api/v1/rulesets/credit/parameters",
        json={"values": {"p_exposure_check": "bogus"}, "effective_from": "2027-01-01"},
        headers=tokens["analyst"],
    )
    assert response.status_code == 422
    assert response.json["errors"] == [
        {"field": "values.p_exposure_check", "message": "must be one of static, dynamic"}
    ]
    assert stored_versions(container, ParameterVersion) == [1]


def test_parameter_version_is_picked_by_effective_from_against_as_of(client, tokens):
    response = client.put(
        "/api/v1/rulesets/credit/parameters",
        json={"values": {"p_max_oldest_item_days": 90}, "effective_from": "2027-01-01"},
        headers=tokens["analyst"],
    )
    assert response.status_code == 201, response.json
    assert response.json["version"] == 2

    before = evaluate(client, tokens["auditor"], "2026-12-31", oldest_item_days_past_due=75)
    after = evaluate(client, tokens["auditor"], "2027-01-01", oldest_item_days_past_due=75)
    assert (before["parameter_version"], before["outcome"]) == (1, "hold")
    assert before["fired_ids"] == ["oldest_open_item"]
    assert (after["parameter_version"], after["outcome"]) == (2, "pass")


def test_dry_run_evaluation_records_nothing(client, tokens, container):
    decision = evaluate(client, tokens["auditor"], "2026-11-23", checked_exposure="55000.00")
    assert decision["outcome"] == "hold" and decision["recorded"] is False
    assert decision_count(container) == 0
    assert client.get("/api/v1/decisions", headers=tokens["auditor"]).json["items"] == []


def test_bad_facts_are_a_422_naming_the_fact(client, tokens):
    facts = {**CREDIT_FACTS, "credit_limit": "lots"}
    response = client.post(
        "/api/v1/rulesets/credit/evaluate",
        json={"facts": facts, "as_of": "2026-11-23"},
        headers=tokens["auditor"],
    )
    assert response.status_code == 422
    assert [e["field"] for e in response.json["errors"]] == ["facts.credit_limit"]


def test_business_rule_task_records_a_decision_linked_to_instance_and_element(
    credit_process, client, tokens
):
    held = start_order(credit_process, "SO-1", checked_exposure="55000.00", overage_pct="10")
    assert [t["element_id"] for t in held["active_tasks"]] == ["release_credit_hold"]
    assert held["active_tasks"][0]["candidate_groups"] == ["credit_manager"]
    released = start_order(credit_process, "SO-2")
    assert released["status"] == "completed"

    with credit_process.runtime.uow(write=False) as uow:
        variables = uow.session.get(Instance, held["id"]).variables
    assert variables["decision"]["outcome"] == "hold"
    assert variables["decision"]["fired"] == ["over_limit"]

    listed = client.get(
        f"/api/v1/decisions?instance_id={held['id']}", headers=tokens["auditor"]
    ).json["items"]
    assert [(d["element_id"], d["outcome"]) for d in listed] == [("check_credit", "hold")]
    assert listed[0]["id"] == variables["decision"]["id"]
    record = listed[0]["record"]
    assert record["facts"]["checked_exposure"] == "55000.00"
    assert record["fired"][0]["reason"].startswith("Exposure 55000.00 EUR including this order")


def test_stored_decision_reevaluates_exactly_in_a_new_container(
    credit_process, client, tokens, database_url, tmp_path: Path
):
    instance = start_order(credit_process, "SO-1", grade="D", next_review_on="2026-11-01")
    [summary] = client.get(
        f"/api/v1/decisions?instance_id={instance['id']}", headers=tokens["auditor"]
    ).json["items"]
    stored = client.get(f"/api/v1/decisions/{summary['id']}", headers=tokens["auditor"]).json
    assert stored["record"]["outcome"] == "hold"

    restarted = make_container(database_url, tmp_path / "restart")
    try:
        again = restarted.runtime.rules.rules.reevaluate(stored["record"])
        assert again.to_record() == stored["record"]
    finally:
        restarted.close()


def test_replay_counts_the_outcomes_a_candidate_would_change(credit_process, client, tokens):
    for order_no, days in (("SO-1", 30), ("SO-2", 75), ("SO-3", 100)):
        start_order(credit_process, order_no, oldest_item_days_past_due=days)
    today = datetime.now(UTC).date()
    period = {"from": (today - timedelta(days=1)).isoformat(), "to": today.isoformat()}

    response = client.post(
        "/api/v1/rulesets/credit/replay",
        json={"parameters": {"p_max_oldest_item_days": 90}, **period},
        headers=tokens["analyst"],
    )
    assert response.status_code == 200, response.json
    assert (response.json["total"], response.json["changed"]) == (3, 1)
    [example] = response.json["examples"]
    assert example["facts"]["oldest_item_days_past_due"] == 75
    assert (example["outcome_before"], example["outcome_after"]) == ("hold", "pass")
    assert decision_count(credit_process) == 3

    stricter = credit_document()
    for rule in stricter["rules"]:
        if rule["id"] == "oldest_open_item":
            rule["when"] = {"$gt": {"oldest_item_days_past_due": 20}}
    response = client.post(
        "/api/v1/rulesets/credit/replay",
        json={"ruleset": stricter, **period},
        headers=tokens["analyst"],
    )
    assert (response.json["total"], response.json["changed"]) == (3, 1)
    assert response.json["examples"][0]["fired_after"] == ["oldest_open_item"]


def test_auditor_reads_but_cannot_publish_set_parameters_or_replay(client, tokens, container):
    headers = tokens["auditor"]
    published = client.post(
        "/api/v1/rulesets/credit/versions", json=credit_document(), headers=headers
    )
    parameters = client.put(
        "/api/v1/rulesets/credit/parameters",
        json={"values": {"p_max_oldest_item_days": 90}, "effective_from": "2027-01-01"},
        headers=headers,
    )
    replayed = client.post(
        "/api/v1/rulesets/credit/replay",
        json={"version": 1, "from": "2026-01-01", "to": "2026-12-31"},
        headers=headers,
    )
    assert [published.status_code, parameters.status_code, replayed.status_code] == [403] * 3
    assert stored_versions(container, RulesetVersion) == [1]
    assert client.get("/api/v1/decisions", headers=headers).status_code == 200
    assert client.get("/api/v1/rulesets", headers=tokens["erp"]).status_code == 200


def test_unknown_ruleset_and_decision_are_404_problems(client, tokens):
    for path in ("/api/v1/rulesets/nothing", "/api/v1/decisions/999999"):
        response = client.get(path, headers=tokens["auditor"])
        assert response.status_code == 404
        assert response.mimetype == "application/problem+json"


def test_a_version_too_large_for_the_database_is_a_400_naming_it(client, tokens):
    huge = 2**70
    read = client.get(f"/api/v1/rulesets/credit?version={huge}", headers=tokens["analyst"])
    assert read.status_code == 400, read.json
    assert [e["field"] for e in read.json["errors"]] == ["version"]
    dry_run = client.post(
        "/api/v1/rulesets/credit/evaluate",
        json={"facts": {}, "version": huge},
        headers=tokens["analyst"],
    )
    assert dry_run.status_code == 400, dry_run.json
    assert dry_run.json["errors"][0]["field"] == "version"
    paged = client.get("/api/v1/instances?page=99999999999999999999", headers=tokens["auditor"])
    assert paged.status_code == 400, paged.json


def test_the_audit_link_of_a_decision_holds_the_digest_of_its_full_record(
    credit_process, client, tokens
):
    import hashlib

    from engine.store.audit import canonical_value

    instance = start_order(credit_process, "SO-1", checked_exposure="55000.00", overage_pct="10")
    [decision] = client.get(
        f"/api/v1/decisions?instance_id={instance['id']}", headers=tokens["auditor"]
    ).json["items"]
    trail = client.get(
        f"/api/v1/audit?entity=decision:{decision['id']}", headers=tokens["auditor"]
    ).json["items"]
    [link] = [e for e in trail if e["action"] == "decision_recorded"]
    expected = hashlib.sha256(canonical_value(decision["record"])).hexdigest()
    assert link["after"]["record"] == {"sha256": expected}
    assert link["after"]["outcome"] == "hold"
