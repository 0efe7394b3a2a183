"""Where rulesets and parameter versions are stored: the protocol and an in-memory store.

`engine/store` implements the same protocol with SQLAlchemy.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Protocol

from rules.errors import NoParametersInForce, UnknownRuleset
from rules.model import ParameterVersion, Ruleset, parse_ruleset

DEFAULTS_DIR = Path(__file__).parent / "rulesets"


class RulesetRepository(Protocol):
    def get_active(self, key: str) -> Ruleset: ...

    def get(self, key: str, version: int) -> Ruleset: ...

    def list_keys(self) -> list[str]: ...

    def add(self, ruleset: Ruleset) -> None: ...

    def parameter_versions(self, key: str) -> list[ParameterVersion]: ...

    def add_parameter_version(self, parameters: ParameterVersion) -> None: ...


def parameters_in_force(versions: Iterable[ParameterVersion], as_of: date) -> ParameterVersion:
    """The version with the latest `effective_from` on or before `as_of` (ties: latest version)."""
    candidates = [p for p in versions if p.effective_from <= as_of]
    if not candidates:
        raise NoParametersInForce(f"no parameter version is in force on {as_of.isoformat()}")
    return max(candidates, key=lambda p: (p.effective_from, p.version))


class InMemoryRulesetRepository:
    def __init__(self) -> None:
        self._rulesets: dict[str, dict[int, Ruleset]] = {}
        self._parameters: dict[str, list[ParameterVersion]] = {}

    @classmethod
    def from_defaults(cls, directory: Path = DEFAULTS_DIR) -> InMemoryRulesetRepository:
        """Load every shipped `rulesets/*.json`, each with its defaults as parameter version 1."""
        repository = cls()
        for path in sorted(directory.glob("*.json")):
            document = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
            ruleset = parse_ruleset(document)
            repository.add(ruleset)
            repository.add_parameter_version(
                ParameterVersion(
                    ruleset.key, 1, ruleset.defaults_effective_from, ruleset.parameter_defaults
                )
            )
        return repository

    def get_active(self, key: str) -> Ruleset:
        versions = self._versions(key)
        return versions[max(versions)]

    def get(self, key: str, version: int) -> Ruleset:
        try:
            return self._versions(key)[version]
        except KeyError:
            raise UnknownRuleset(f"no version {version} of ruleset {key!r}") from None

    def list_keys(self) -> list[str]:
        return sorted(self._rulesets)

    def add(self, ruleset: Ruleset) -> None:
        self._rulesets.setdefault(ruleset.key, {})[ruleset.version] = ruleset

    def parameter_versions(self, key: str) -> list[ParameterVersion]:
        return list(self._parameters.get(key, []))

    def add_parameter_version(self, parameters: ParameterVersion) -> None:
        self._parameters.setdefault(parameters.key, []).append(parameters)

    def _versions(self, key: str) -> dict[int, Ruleset]:
        if key not in self._rulesets:
            raise UnknownRuleset(f"no ruleset {key!r}")
        return self._rulesets[key]
