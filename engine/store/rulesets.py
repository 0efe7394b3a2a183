"""Published rulesets and parameter versions in the database (rules.repository protocol).

The shipped `rules/rulesets/*.json` are seeded into the database as version 1 of every key the
database holds nothing for, rather than layered over it at read time. Decision records point at
`key@version`: once version 1 is in the database, a later change to the shipped JSON cannot
change what version 1 meant, so a stored decision still re-evaluates exactly (DESIGN §3).
`bootstrap()` seeds at start-up; the repository also seeds lazily on first use, but only writes
when something is missing, so a business rule task inside a SQLite command never waits on its
own write lock.

Every call opens its own short unit of work, so the repository works from any thread and from
inside an engine command. Parsed rulesets are immutable per `(key, version)` and cached for
good; which version is active and the parameter versions are cached for `max_age` seconds
(another process's publish shows within that window) and dropped at once on a local publish.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from engine.errors import Conflict
from engine.store.tables import ParameterVersion as ParameterRow
from engine.store.tables import RulesetVersion as RulesetRow
from engine.store.uow import UnitOfWork, UnitOfWorkFactory
from rules import values
from rules.errors import UnknownRuleset
from rules.model import ParameterVersion, Ruleset, parse_ruleset
from rules.repository import DEFAULTS_DIR

# Who publishes: set by the API around a publish so the row names the analyst.
PUBLISHED_BY: ContextVar[str | None] = ContextVar("flowgate_published_by", default=None)
SEEDED_BY = "flowgate (shipped default)"


@contextmanager
def published_by(user: str) -> Iterator[None]:
    token = PUBLISHED_BY.set(user)
    try:
        yield
    finally:
        PUBLISHED_BY.reset(token)


class SqlRulesetRepository:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        defaults_dir: Path = DEFAULTS_DIR,
        max_age: float = 1.0,
    ) -> None:
        self._uow = uow
        self._defaults_dir = defaults_dir
        self._max_age = max_age
        self._seed_lock = threading.Lock()
        self._seeded = False
        self._parsed: dict[tuple[str, int], Ruleset] = {}
        self._active: dict[str, tuple[float, int]] = {}
        self._parameters: dict[str, tuple[float, list[ParameterVersion]]] = {}

    # -- the RulesetRepository protocol ---------------------------------------------------

    def get_active(self, key: str) -> Ruleset:
        self._ensure_seeded()
        cached = self._active.get(key)
        if cached is not None and self._fresh(cached[0]):
            return self.get(key, cached[1])
        with self._uow(write=False) as uow:
            version = uow.session.execute(
                select(func.max(RulesetRow.version)).where(RulesetRow.key == key)
            ).scalar_one()
        if version is None:
            raise UnknownRuleset(f"no ruleset {key!r}")
        self._active[key] = (time.monotonic(), version)
        return self.get(key, version)

    def get(self, key: str, version: int) -> Ruleset:
        parsed = self._parsed.get((key, version))
        if parsed is not None:
            return parsed
        self._ensure_seeded()
        with self._uow(write=False) as uow:
            row = uow.session.get(RulesetRow, (key, version))
            body = None if row is None else row.body
        if body is None:
            raise UnknownRuleset(f"no version {version} of ruleset {key!r}")
        parsed = parse_ruleset({**body, "version": version})
        self._parsed[(key, version)] = parsed
        return parsed

    def list_keys(self) -> list[str]:
        self._ensure_seeded()
        with self._uow(write=False) as uow:
            return list(
                uow.session.execute(
                    select(RulesetRow.key).distinct().order_by(RulesetRow.key)
                ).scalars()
            )

    def add(self, ruleset: Ruleset) -> None:
        """Store the next version of a key; a version someone else took first is a Conflict."""
        self._ensure_seeded()
        try:
            with self._uow() as uow:
                current = uow.session.execute(
                    select(func.max(RulesetRow.version)).where(RulesetRow.key == ruleset.key)
                ).scalar_one()
                if ruleset.version != (current or 0) + 1:
                    raise Conflict(
                        f"ruleset {ruleset.key!r} is at version {current}; "
                        f"version {ruleset.version} cannot be published, retry"
                    )
                uow.session.add(
                    RulesetRow(
                        key=ruleset.key,
                        version=ruleset.version,
                        body=jsonable(ruleset.to_json()),
                        published_by=PUBLISHED_BY.get(),
                    )
                )
                uow.commit()
        except IntegrityError:
            raise Conflict(
                f"version {ruleset.version} of ruleset {ruleset.key!r} was published "
                "concurrently, retry"
            ) from None
        self._parsed[(ruleset.key, ruleset.version)] = ruleset
        self._active.pop(ruleset.key, None)

    def parameter_versions(self, key: str) -> list[ParameterVersion]:
        self._ensure_seeded()
        cached = self._parameters.get(key)
        if cached is not None and self._fresh(cached[0]):
            return list(cached[1])
        with self._uow(write=False) as uow:
            rows = [
                (row.version, row.effective_from, dict(row.values))
                for row in uow.session.execute(
                    select(ParameterRow)
                    .where(ParameterRow.key == key)
                    .order_by(ParameterRow.version)
                ).scalars()
            ]
        types = self._parameter_types(key) if rows else {}
        versions = [
            ParameterVersion(key, version, date.fromisoformat(effective), _decode(types, raw))
            for version, effective, raw in rows
        ]
        self._parameters[key] = (time.monotonic(), versions)
        return list(versions)

    def add_parameter_version(self, parameters: ParameterVersion) -> None:
        self._ensure_seeded()
        types = self._parameter_types(parameters.key)
        try:
            with self._uow() as uow:
                uow.session.add(
                    ParameterRow(
                        key=parameters.key,
                        version=parameters.version,
                        values=_encode(types, parameters.values),
                        effective_from=parameters.effective_from.isoformat(),
                        published_by=PUBLISHED_BY.get(),
                    )
                )
                uow.commit()
        except IntegrityError:
            raise Conflict(
                f"parameter version {parameters.version} of {parameters.key!r} was published "
                "concurrently, retry"
            ) from None
        self._parameters.pop(parameters.key, None)

    # -- seeding ---------------------------------------------------------------------------

    def seed_defaults(self) -> list[str]:
        """Store each shipped ruleset the database holds no version of; return those keys.

        Idempotent and safe against a second process seeding at the same moment.
        """
        defaults = _load_defaults(self._defaults_dir)
        with self._uow(write=False) as uow:
            missing = set(defaults) - set(
                uow.session.execute(select(RulesetRow.key).distinct()).scalars()
            )
        if not missing:
            self._seeded = True
            return []
        try:
            with self._uow() as uow:
                stored = set(uow.session.execute(select(RulesetRow.key).distinct()).scalars())
                with_parameters = set(
                    uow.session.execute(select(ParameterRow.key).distinct()).scalars()
                )
                seeded = sorted(missing - stored)
                for key in seeded:
                    ruleset = defaults[key]
                    uow.session.add(
                        RulesetRow(
                            key=key,
                            version=1,
                            body=jsonable(ruleset.to_json()),
                            published_by=SEEDED_BY,
                        )
                    )
                    if key not in with_parameters:
                        uow.session.add(
                            ParameterRow(
                                key=key,
                                version=1,
                                values=_encode(ruleset.parameter_types, ruleset.parameter_defaults),
                                effective_from=ruleset.defaults_effective_from.isoformat(),
                                published_by=SEEDED_BY,
                            )
                        )
                uow.commit()
        except IntegrityError:
            seeded = []  # another process seeded first; its rows are the same shipped defaults
        self._seeded = True
        return seeded

    def _ensure_seeded(self) -> None:
        if self._seeded:
            return
        with self._seed_lock:
            if not self._seeded:
                self.seed_defaults()
                self._seeded = True

    def _parameter_types(self, key: str) -> Mapping[str, str]:
        try:
            return self.get_active(key).parameter_types
        except UnknownRuleset:
            return {}

    def _fresh(self, loaded_at: float) -> bool:
        return time.monotonic() - loaded_at < self._max_age


def ruleset_history(uow: UnitOfWork, key: str) -> dict[str, list[dict[str, Any]]]:
    """Who published each ruleset and parameter version of a key, and when (oldest first)."""
    versions = uow.session.execute(
        select(RulesetRow.version, RulesetRow.published_by, RulesetRow.published_at)
        .where(RulesetRow.key == key)
        .order_by(RulesetRow.version)
    ).all()
    parameters = uow.session.execute(
        select(ParameterRow).where(ParameterRow.key == key).order_by(ParameterRow.version)
    ).scalars()
    return {
        "versions": [
            {"version": v, "published_by": by, "published_at": at.isoformat()}
            for v, by, at in versions
        ],
        "parameter_versions": [
            {
                "version": row.version,
                "effective_from": row.effective_from,
                "values": row.values,
                "published_by": row.published_by,
                "published_at": row.published_at.isoformat(),
            }
            for row in parameters
        ],
    }


def _load_defaults(directory: Path) -> dict[str, Ruleset]:
    defaults = {}
    for path in sorted(directory.glob("*.json")):
        document = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
        ruleset = parse_ruleset({**document, "version": 1})
        defaults[ruleset.key] = ruleset
    return defaults


def _encode(types: Mapping[str, str], parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {
        name: values.to_json(types[name], value) if name in types else jsonable(value)
        for name, value in parameters.items()
    }


def _decode(types: Mapping[str, str], stored: Mapping[str, Any]) -> dict[str, Any]:
    """Typed values for the parameters the active version declares; others stay as stored.

    RulesService only uses the names a ruleset declares, so undeclared ones need no type.
    """
    return {
        name: values.coerce(types[name], value) if name in types else value
        for name, value in stored.items()
    }


def jsonable(value: Any) -> Any:
    """Decimals as strings (exact; the ruleset parser reads them back), dates as ISO."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    return value
