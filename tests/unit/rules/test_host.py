from __future__ import annotations

import json
import threading
import time
from datetime import date

import durable_rules_engine
import pytest

from rules.errors import RuleEvaluationFailed
from rules.host import RulesHost, get_host
from rules.service import RulesService
from rules.values import engine_member, to_engine

FACTS = {"days_past_due": 40}


def test_host_is_one_per_process() -> None:
    assert get_host() is get_host()


def test_action_exception_fails_closed(
    rules_service: RulesService, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = RulesHost()
    service = RulesService(rules_service._repository, host)

    def broken(fired: list[str], rule_id: str) -> None:
        raise RuntimeError("action broke")

    monkeypatch.setattr(host, "record_firing", broken)
    with pytest.raises(RuleEvaluationFailed, match="action broke"):
        service.evaluate("dunning", FACTS, date(2026, 11, 23))
    monkeypatch.undo()
    assert service.evaluate("dunning", FACTS, date(2026, 11, 23)).outcome == "hold"


def test_engine_failure_between_actions_fails_closed_and_frees_the_session(
    rules_service: RulesService, monkeypatch: pytest.MonkeyPatch
) -> None:
    host = RulesHost()
    service = RulesService(rules_service._repository, host)

    def broken(handle: int, state_offset: int) -> str:
        raise RuntimeError("engine broke")

    monkeypatch.setattr(durable_rules_engine, "complete_and_start_action", broken)
    for _ in range(1_100):  # more than the engine's 1,024 live sessions
        with pytest.raises(RuleEvaluationFailed, match="engine broke"):
            service.evaluate("dunning", FACTS, date(2026, 11, 23))
    monkeypatch.undo()
    assert service.evaluate("dunning", FACTS, date(2026, 11, 23)).outcome == "hold"


def test_waiting_evaluations_take_the_host_in_arrival_order() -> None:
    lock = RulesHost()._lock
    order: list[int] = []

    def evaluate(number: int) -> None:
        with lock:
            order.append(number)

    with lock:
        threads = []
        for number in range(5):
            thread = threading.Thread(target=evaluate, args=(number,))
            thread.start()
            threads.append(thread)
            while len(lock._waiting) <= number:  # wait until this one is queued
                time.sleep(0.001)
    for thread in threads:
        thread.join()
    assert order == [0, 1, 2, 3, 4]


def test_evaluation_without_any_rule_firing_leaves_no_session(rules_service: RulesService) -> None:
    # More than the engine's 1,024 live sessions: each one must be deleted.
    for _ in range(1_100):
        assert rules_service.evaluate("dunning", {"days_past_due": 0}, date(2026, 1, 5)).fired == ()


def test_same_ruleset_version_with_other_rules_gets_its_own_engine_name() -> None:
    host = RulesHost()
    first = {"a": {"all": [{"m": {"$gt": {"x": 1}}}]}}
    second = {"a": {"all": [{"m": {"$gt": {"x": 5}}}]}}
    assert host.register("probe@1", first) == "probe@1"
    assert host.register("probe@1", first) == "probe@1"
    other = host.register("probe@1", second)
    assert other.startswith("probe@1#")
    assert host.fire("probe@1", ['"x":3']) == ["a"]
    assert host.fire(other, ['"x":3']) == []


def test_decimals_are_scaled_half_even_and_never_floats() -> None:
    from decimal import Decimal

    assert to_engine("decimal", Decimal("1.00005")) == 10000
    assert to_engine("decimal", Decimal("1.00015")) == 10002
    assert to_engine("date", date(2026, 11, 23)) == date(2026, 11, 23).toordinal()
    assert isinstance(to_engine("decimal", Decimal("0.1")), int)


def test_facts_reach_the_engine_as_json_dumps_writes_them() -> None:
    for value in (True, False, 0, -(2**52), 2**52, "B", 'say "Grüße"\n'):
        expected = json.dumps({"grade": value}, separators=(",", ":"))[1:-1]
        assert engine_member("grade", value) == expected
