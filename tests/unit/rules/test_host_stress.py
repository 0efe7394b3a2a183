"""8 threads, 20,000 credit decisions over two parameter versions, checked against an oracle."""

from __future__ import annotations

import random
import threading
from datetime import date
from typing import Any

import pytest

from rules.credit import check_credit
from rules.service import RulesService
from tests.unit.rules.credit_oracle import credit_checks, random_credit

THREADS = 8
EVALUATIONS = 20_000
BEFORE_CHANGE = date(2026, 3, 2)  # parameter version 1 (defaults)
AFTER_CHANGE = date(2026, 9, 1)  # parameter version 2
TIGHTER = {
    "p_exposure_check": "dynamic",
    "p_overage_n_eyes_pct": "10",
    "p_max_oldest_item_days": 30,
    "p_hold_dunning_level": 2,
    "p_max_overdue_share_pct": "25.5",
}


@pytest.mark.slow
def test_concurrent_credit_decisions_match_the_oracle(rules_service: RulesService) -> None:
    defaults = dict(rules_service.parameters("credit", BEFORE_CHANGE)[1])
    rules_service.set_parameters("credit", TIGHTER, date(2026, 6, 1))
    expected_parameters = {
        BEFORE_CHANGE: (1, defaults),
        AFTER_CHANGE: (2, {**defaults, **rules_service.parameters("credit", AFTER_CHANGE)[1]}),
    }
    assert expected_parameters[AFTER_CHANGE][1]["p_hold_dunning_level"] == 2
    mismatches: list[Any] = []
    errors: list[BaseException] = []
    outcomes: dict[str, int] = {}
    lock = threading.Lock()

    def work(seed: int) -> None:
        rng = random.Random(seed)
        try:
            for i in range(EVALUATIONS // THREADS):
                as_of = BEFORE_CHANGE if i % 2 else AFTER_CHANGE
                credit = random_credit(rng, as_of)
                decision = check_credit(rules_service, credit, as_of)
                version, parameters = expected_parameters[as_of]
                expected = credit_checks(credit, as_of, parameters)
                got = (decision.outcome, decision.fired_ids)
                with lock:
                    outcomes[decision.outcome] = outcomes.get(decision.outcome, 0) + 1
                    if decision is None or got != expected or decision.parameter_version != version:
                        mismatches.append((credit, as_of, got, expected))
        except BaseException as error:  # reported below, not lost in the thread
            errors.append(error)

    threads = [threading.Thread(target=work, args=(seed,)) for seed in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert mismatches[:3] == []
    assert sum(outcomes.values()) == EVALUATIONS
    assert set(outcomes) == {"pass", "warn", "hold", "reject"}  # the sample exercises every outcome
