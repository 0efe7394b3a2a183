"""Deployed definition versions: deploy with content versioning, and the parsed-spec cache."""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import bindparam, func, select

from engine.definitions.compile import CompiledDefinition, SourceFile, compile_definition
from engine.errors import NotFound
from engine.store.tables import Definition
from engine.store.uow import UnitOfWork

# Start runs this on every request: built once from the table's plain columns, because building
# it from the ORM's columns (and matching its result to them) cost more than the query.
_DEFINITIONS = Definition.__table__.c
_LATEST_ID = (
    select(_DEFINITIONS.id)
    .where(_DEFINITIONS.key == bindparam("key"))
    .order_by(_DEFINITIONS.version.desc())
    .limit(1)
)
_VERSION_ID = select(_DEFINITIONS.id).where(
    _DEFINITIONS.key == bindparam("key"), _DEFINITIONS.version == bindparam("version")
)


@dataclass(frozen=True)
class LoadedDefinition:
    """One stored version as commands use it: immutable, so it is cached per id per process."""

    id: int
    key: str
    version: int
    elements: dict[str, Any]
    spec: Any
    subprocess_specs: dict[str, Any]


@dataclass(frozen=True)
class Deployed:
    key: str
    version: int
    checksum: str
    created: bool


class DefinitionCatalog:
    def __init__(
        self,
        known_topic: Callable[[str], bool],
        known_ruleset: Callable[[str], bool],
        cache_size: int = 256,
    ) -> None:
        self.known_topic = known_topic
        self.known_ruleset = known_ruleset
        self._cache: OrderedDict[int, LoadedDefinition] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def compile(self, files: list[SourceFile]) -> CompiledDefinition:
        return compile_definition(files, self.known_topic, self.known_ruleset)

    def deploy(self, uow: UnitOfWork, files: list[SourceFile], actor: str | None) -> list[Deployed]:
        """Deploy every executable process in `files`; identical content keeps its version."""
        compiled = self.compile(files)
        stored_files = [{"name": f.name, "content": f.content.decode("utf-8")} for f in files]
        results = []
        for key in compiled.process_ids:
            latest = uow.session.execute(
                select(Definition)
                .where(Definition.key == key)
                .order_by(Definition.version.desc())
                .limit(1)
            ).scalar_one_or_none()
            if latest is not None and latest.checksum == compiled.checksum:
                results.append(Deployed(key, latest.version, latest.checksum, created=False))
                continue
            row = Definition(
                key=key,
                version=(latest.version + 1) if latest else 1,
                checksum=compiled.checksum,
                files=stored_files,
                elements=compiled.elements[key],
                deployed_by=actor,
            )
            uow.session.add(row)
            uow.session.flush()
            self._remember(row, compiled.specs[key])
            results.append(Deployed(key, row.version, row.checksum, created=True))
        return results

    def version(self, uow: UnitOfWork, key: str, version: int) -> Definition:
        row = uow.session.execute(
            select(Definition).where(Definition.key == key, Definition.version == version)
        ).scalar_one_or_none()
        if row is None:
            raise NotFound(f"process '{key}' has no version {version}")
        return row

    def by_id(self, uow: UnitOfWork, definition_id: int) -> Definition:
        row = uow.session.get(Definition, definition_id)
        if row is None:
            raise NotFound(f"definition {definition_id} is missing")
        return row

    def summary(self, uow: UnitOfWork) -> list[dict[str, Any]]:
        rows = uow.session.execute(
            select(
                Definition.key, Definition.version, Definition.checksum, Definition.deployed_at
            ).order_by(Definition.key, Definition.version)
        ).all()
        by_key: dict[str, dict[str, Any]] = {}
        for key, version, checksum, deployed_at in rows:
            entry = by_key.setdefault(key, {"key": key, "latest_version": 0, "versions": []})
            entry["versions"].append(
                {"version": version, "checksum": checksum, "deployed_at": deployed_at.isoformat()}
            )
            entry["latest_version"] = max(entry["latest_version"], version)
        return list(by_key.values())

    def count(self, uow: UnitOfWork) -> int:
        return uow.session.execute(select(func.count()).select_from(Definition)).scalar_one()

    def loaded(self, uow: UnitOfWork, definition_id: int) -> LoadedDefinition:
        """A stored version with its parsed spec and elements, read and parsed once per process.

        Rows never change after deploy, so only the first use in a process reads the row (and
        the deferred XML); later commands pay one dictionary lookup instead of a query plus a
        JSON decode of the element map.
        """
        with self._lock:
            cached = self._cache.get(definition_id)
            if cached is not None:
                self._cache.move_to_end(definition_id)
                return cached
        row = self.by_id(uow, definition_id)
        files = [SourceFile(f["name"], f["content"].encode("utf-8")) for f in row.files]
        # Stored versions were validated at deploy time; re-validating topics here would strand
        # running instances if a handler were later renamed.
        compiled = compile_definition(files)
        return self._remember(row, compiled.specs[row.key])

    def latest_loaded(
        self, uow: UnitOfWork, key: str, version: int | None = None
    ) -> LoadedDefinition:
        """The newest version of `key` (or the given one); the query reads the index only."""
        if version:
            found = uow.session.execute(_VERSION_ID, {"key": key, "version": version})
        else:
            found = uow.session.execute(_LATEST_ID, {"key": key})
        definition_id = found.scalar_one_or_none()
        if definition_id is None:
            if version:
                raise NotFound(f"process '{key}' has no version {version}")
            raise NotFound(f"no process definition with key '{key}'")
        return self.loaded(uow, definition_id)

    def _remember(self, row: Definition, specs: tuple[Any, dict[str, Any]]) -> LoadedDefinition:
        spec, subprocess_specs = specs
        loaded = LoadedDefinition(
            row.id, row.key, row.version, row.elements, spec, subprocess_specs
        )
        with self._lock:
            self._cache[row.id] = loaded
            while len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return loaded
