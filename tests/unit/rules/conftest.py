from __future__ import annotations

import pytest

from rules.repository import InMemoryRulesetRepository
from rules.service import RulesService


@pytest.fixture
def repository() -> InMemoryRulesetRepository:
    return InMemoryRulesetRepository.from_defaults()


@pytest.fixture
def rules_service(repository: InMemoryRulesetRepository) -> RulesService:
    return RulesService(repository)
