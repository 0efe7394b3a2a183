"""SqlRulesetRepository against a real database: seeding, threads, frozen version 1."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from engine.store.db import make_engine
from engine.store.migrate import upgrade
from engine.store.rulesets import SqlRulesetRepository
from engine.store.tables import RulesetVersion
from engine.store.uow import UnitOfWorkFactory
from rules.repository import DEFAULTS_DIR
from rules.service import RulesService
from tests.integration.test_rulesets_api import CREDIT_FACTS


@pytest.fixture
def uow(database_url: str) -> Iterator[UnitOfWorkFactory]:
    upgrade(database_url)
    engine = make_engine(database_url)
    yield UnitOfWorkFactory(engine)
    engine.dispose()


def test_second_process_seeding_the_same_database_adds_nothing(uow):
    first, second = SqlRulesetRepository(uow), SqlRulesetRepository(uow)
    assert "credit" in first.seed_defaults()
    assert second.seed_defaults() == []
    with uow(write=False) as unit:
        rows = unit.session.execute(
            select(func.count()).select_from(RulesetVersion).where(RulesetVersion.key == "credit")
        ).scalar_one()
    assert rows == 1
    assert second.list_keys() == sorted(p.stem for p in DEFAULTS_DIR.glob("*.json"))


def test_a_changed_shipped_default_does_not_rewrite_stored_version_1(uow, tmp_path: Path):
    SqlRulesetRepository(uow).seed_defaults()
    shipped = tmp_path / "rulesets"
    shutil.copytree(DEFAULTS_DIR, shipped)
    document = json.loads((shipped / "credit.json").read_text(encoding="utf-8"))
    for rule in document["rules"]:
        if rule["id"] == "over_limit":
            rule["reason"] = "Over the limit"
    (shipped / "credit.json").write_text(json.dumps(document), encoding="utf-8")

    upgraded = SqlRulesetRepository(uow, defaults_dir=shipped)
    assert upgraded.get("credit", 1).rule("over_limit").reason.startswith("Exposure {checked")


def test_evaluations_from_many_threads_see_each_parameter_version_consistently(uow):
    rules = RulesService(SqlRulesetRepository(uow, max_age=0.0))
    facts = {**CREDIT_FACTS, "oldest_item_days_past_due": 75}

    def decide(day: int) -> tuple[int, str]:
        decision = rules.evaluate("credit", facts, date(2027, 1, day))
        return decision.parameter_version, decision.outcome

    with ThreadPoolExecutor(8) as pool:
        pending = [pool.submit(decide, 1 + i % 20) for i in range(80)]
        rules.set_parameters("credit", {"p_max_oldest_item_days": 90}, date(2027, 1, 10))
        results = [future.result() for future in pending]
    # Before its effective date version 1 holds at 75 days; from it version 2 passes.
    assert set(results) <= {(1, "hold"), (2, "pass")}
    assert decide(9) == (1, "hold") and decide(10) == (2, "pass")
