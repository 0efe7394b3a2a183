"""The tamper-evident audit trail: an append-only `audit_event` table chained by SHA-256.

What is recorded is decided here, centrally, so no command has to remember to audit itself.
Every unit of work uses `AuditedSession`; after each flush it notes the rows of audited tables
that were inserted, updated or deleted, and just before the transaction commits it appends one
`audit_event` per change to the chain, in the same transaction. A rolled-back command therefore
leaves no audit trace, and a committed one can never lack its trace.

The engine's own audited tables are listed in `ENGINE_TABLES` (history events, decisions,
definitions, ruleset and parameter versions, API keys, instances, human tasks, buffered
messages, webhooks).

**The `__audited__` hook.** Any other model declared on `engine.store.tables.Base` joins the
trail by setting class attributes, with no other code to call:

    class JournalEntry(Base):
        __tablename__ = "journal_entry"
        __audited__ = True                      # every insert, update and delete is recorded
        __audit_entity__ = "journal_entry"      # optional: entity type (default: table name)
        __audit_exclude__ = {"attachment"}      # optional: columns never copied into the trail

Such a row is recorded as action `<entity>_created`, `<entity>_updated` (before/after of the
changed columns only) or `<entity>_deleted`, with entity id = its primary key joined by ":".

**Who.** The API sets `AUDIT_CONTEXT` for each authenticated request (user or key name, how they
authenticated, the request line); the CLI sets it for its commands. Without a context (the
scheduler) the row's own actor column is used, else "system". Tokens and keys themselves are
never recorded.

**The chain.** Row `seq` n stores `prev_hash` = hash of row n-1 and `hash` = SHA-256 of the
canonical JSON (sorted keys, no spaces) of its own content including `seq` and `prev_hash`.
Appends are serialised so the chain never forks: `pg_advisory_xact_lock` on PostgreSQL, and on
SQLite the write transaction already holds the database lock (BEGIN IMMEDIATE, engine/store/db.py);
`seq` is the primary key, so two appenders that somehow raced would collide instead of forking.
The lock is taken at commit time, after every other row lock of the command, so it cannot take
part in a deadlock. `verify_chain` recomputes every hash and reports the first broken link.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

from sqlalchemy import JSON, BigInteger, Index, String, event, insert, inspect, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from engine.store.tables import (
    ApiKey,
    Base,
    BufferedMessage,
    CorrelationAlias,
    DecisionRecord,
    Definition,
    HumanTask,
    Instance,
    InstanceEvent,
    ParameterVersion,
    RulesetVersion,
    Webhook,
)

GENESIS = "0" * 64
# Any constant works; it only has to be the same for every appender (ASCII "FGAUDIT").
PG_LOCK_KEY = 0x46474155444954
PENDING = "flowgate_audit_pending"
# Never copied into the trail: blobs, parsed models and anything that verifies a secret.
ALWAYS_EXCLUDED = frozenset({"files", "elements", "key_hash", "secret", "lock_version"})


class AuditEvent(Base):
    """One link of the chain. Never updated or deleted (migration 0003 adds triggers)."""

    __tablename__ = "audit_event"
    __table_args__ = (
        Index("ix_audit_entity", "entity_type", "entity_id", "seq"),
        Index("ix_audit_at", "at"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    at: Mapped[datetime] = mapped_column()
    actor: Mapped[str] = mapped_column(String(200))
    via: Mapped[str | None] = mapped_column(String(200))
    action: Mapped[str] = mapped_column(String(80))
    entity_type: Mapped[str] = mapped_column(String(80))
    entity_id: Mapped[str] = mapped_column(String(400))
    before: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    after: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    context: Mapped[dict[str, Any]] = mapped_column(JSON)
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64))


# Who is acting ------------------------------------------------------------------------------


@dataclass(frozen=True)
class AuditContext:
    actor: str
    via: str | None = None
    details: dict[str, Any] = field(default_factory=dict)


AUDIT_CONTEXT: ContextVar[AuditContext | None] = ContextVar("flowgate_audit", default=None)


@contextmanager
def acting_as(actor: str, via: str | None = None, **details: Any) -> Iterator[None]:
    token = AUDIT_CONTEXT.set(AuditContext(actor, via, details))
    try:
        yield
    finally:
        AUDIT_CONTEXT.reset(token)


# What is recorded ---------------------------------------------------------------------------


def jsonable(value: Any) -> Any:
    """Plain JSON that survives a database round trip unchanged, so its hash stays valid."""
    if value is None or isinstance(value, str | bool | int):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, Decimal | UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat() if value.tzinfo else value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bytes):
        return {"bytes": len(value)}
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return sorted(jsonable(v) for v in value)
    return str(value)


@dataclass(frozen=True)
class TableSpec:
    """How changes to one table read in the trail."""

    entity: str
    entity_id: Callable[[Any], str]
    created: str | None = None
    updated: str | None = None
    deleted: str | None = None
    actor: Callable[[Any], str | None] = lambda _row: None
    exclude: frozenset[str] = frozenset()
    # An update that touches only these columns is bookkeeping, not a change worth a link.
    ignore_updates_of: frozenset[str] = frozenset()
    # Large immutable columns the link covers by their SHA-256 instead of a second copy.
    digested: frozenset[str] = frozenset()


def _key_version(row: Any) -> str:
    return f"{row.key}:{row.version}"


ENGINE_TABLES: dict[type, TableSpec] = {
    InstanceEvent: TableSpec("instance", lambda r: r.instance_id, actor=lambda r: r.actor),
    Instance: TableSpec(
        "instance",
        lambda r: r.id,
        created="instance_created",
        updated="instance_changed",
        actor=lambda r: r.started_by,
        exclude=frozenset({"state"}),
        ignore_updates_of=frozenset({"updated_at"}),
    ),
    HumanTask: TableSpec("task", lambda r: r.id, "task_created", "task_changed", "task_deleted"),
    # The full record (every input fact, each fired rule) is the decision row itself; the link
    # holds its digest, so an edited record no longer matches the chain.
    DecisionRecord: TableSpec(
        "decision",
        lambda r: str(r.id),
        created="decision_recorded",
        digested=frozenset({"record"}),
    ),
    Definition: TableSpec(
        "definition", _key_version, created="definition_deployed", actor=lambda r: r.deployed_by
    ),
    RulesetVersion: TableSpec(
        "ruleset", _key_version, created="ruleset_version_published", actor=lambda r: r.published_by
    ),
    ParameterVersion: TableSpec(
        "parameters",
        _key_version,
        created="parameter_version_published",
        actor=lambda r: r.published_by,
    ),
    ApiKey: TableSpec(
        "api_key",
        lambda r: r.name,
        "api_key_created",
        "api_key_changed",
        "api_key_deleted",
        ignore_updates_of=frozenset({"last_used_at"}),
    ),
    BufferedMessage: TableSpec(
        "message",
        lambda r: f"{r.message_name}:{r.correlation_key}",
        created="message_buffered",
        updated="message_expired",
    ),
    Webhook: TableSpec("webhook", lambda r: str(r.id), "webhook_created", "webhook_changed"),
    CorrelationAlias: TableSpec(
        "correlation_alias", lambda r: r.alias, created="correlation_alias_created"
    ),
}


def _generic_spec(cls: type) -> TableSpec:
    entity = getattr(cls, "__audit_entity__", None) or cls.__tablename__  # type: ignore[attr-defined]

    def entity_id(row: Any) -> str:
        identity = inspect(row).mapper.primary_key_from_instance(row)
        return ":".join(str(part) for part in identity)

    return TableSpec(
        entity,
        entity_id,
        f"{entity}_created",
        f"{entity}_updated",
        f"{entity}_deleted",
        exclude=frozenset(getattr(cls, "__audit_exclude__", ())),
    )


def spec_for(cls: type) -> TableSpec | None:
    spec = ENGINE_TABLES.get(cls)
    if spec is None and getattr(cls, "__audited__", False):
        spec = _generic_spec(cls)
        ENGINE_TABLES[cls] = spec
    return spec


# A mapped class's recorded columns never change: worked out once per class, not per row and
# flush (every command's flush records its instance, tasks and history).
_COLUMNS: dict[type, list[str]] = {}


def _columns(row: Any, spec: TableSpec) -> list[str]:
    names = _COLUMNS.get(type(row))
    if names is None:
        excluded = ALWAYS_EXCLUDED | spec.exclude
        names = [a.key for a in inspect(row).mapper.column_attrs if a.key not in excluded]
        _COLUMNS[type(row)] = names
    return names


def _snapshot(row: Any, spec: TableSpec) -> dict[str, Any]:
    return {
        name: digest(getattr(row, name)) if name in spec.digested else jsonable(getattr(row, name))
        for name in _columns(row, spec)
    }


def digest(value: Any) -> dict[str, str]:
    """A column's content as the chain keeps it when the row itself holds the full copy."""
    return {"sha256": hashlib.sha256(canonical_value(value)).hexdigest()}


def _diff(row: Any, spec: TableSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """Before and after of the columns this flush changed; dicts are compared key by key."""
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    state = inspect(row)
    for name in _columns(row, spec):
        history = state.attrs[name].history
        if history.added:
            old = history.deleted[0] if history.deleted else None
            _compare(name, old, history.added[0], before, after)
    return before, after


def _compare(name: str, old: Any, new: Any, before: dict[str, Any], after: dict[str, Any]) -> None:
    old, new = jsonable(old), jsonable(new)
    if old == new:
        return
    if isinstance(old, dict) and isinstance(new, dict):
        keys = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
        before[name] = {k: old[k] for k in keys if k in old}
        after[name] = {k: new[k] for k in keys if k in new}
    else:
        before[name], after[name] = old, new


@dataclass
class Change:
    action: str
    entity_type: str
    entity_id: str
    row_actor: str | None
    before: dict[str, Any] | None
    after: dict[str, Any] | None


# The history type of one BPMN element run by the engine (engine/runtime/execution.py).
ENGINE_STEP = "element_completed"


def _field(row: Any) -> Callable[[str], Any]:
    """Read a history row's column, from an ORM row or a mapping written with Core."""
    return row.get if isinstance(row, dict) else lambda name: getattr(row, name)


def _instance_event_change(row: Any) -> Change:
    get = _field(row)
    after = {
        "event_id": get("id"),
        "element_id": get("element_id"),
        "details": jsonable(get("details")),
    }
    return Change(get("type"), "instance", get("instance_id"), get("actor"), None, after)


def _engine_steps_change(rows: list[Any]) -> Change:
    """One link for all the engine steps an instance took in one flush, in order.

    A straight-through order runs dozens of elements per command; a link (a hash and a row)
    for each doubled the writes of the history it points to. The link names every step and
    its history row, so the chain still covers each one.
    """
    fields = [_field(row) for row in rows]
    fields.sort(key=lambda get: get("id"))
    first = fields[0]
    after = {
        "event_ids": [get("id") for get in fields],
        "elements": [get("element_id") for get in fields],
    }
    instance_id, actor = first("instance_id"), first("actor")
    return Change("elements_completed", "instance", instance_id, actor, None, after)


def _history_changes(rows: Iterable[Any]) -> list[Change]:
    """The links of history rows, an instance's steps as one placed where its first step is."""
    created: list[Change | list[Any]] = []
    steps: dict[str, list[Any]] = {}
    for row in rows:
        get = _field(row)
        if get("type") == ENGINE_STEP:
            instance_id = get("instance_id")
            if instance_id not in steps:
                created.append(steps.setdefault(instance_id, []))
            steps[instance_id].append(row)
        else:
            created.append(_instance_event_change(row))
    return [_engine_steps_change(c) if isinstance(c, list) else c for c in created]


def _pend(session: Session, changes: list[Change]) -> None:
    # Tag each change with the savepoint it was written in, so rolling that savepoint back
    # forgets exactly its changes and keeps those of the transaction around it.
    savepoint = session.get_nested_transaction()
    session.info.setdefault(PENDING, []).extend((savepoint, change) for change in changes)


def note_history(session: Session, rows: list[dict[str, Any]]) -> None:
    """Chain the history rows a command inserted with Core (with their ids): the flush
    hook below sees only ORM rows. Their links are the same as for ORM history rows."""
    _pend(session, _history_changes(rows))


def _created(row: Any, spec: TableSpec) -> Change:
    snapshot = _snapshot(row, spec)
    return Change(spec.created, spec.entity, spec.entity_id(row), spec.actor(row), None, snapshot)


def _updated(
    row: Any, spec: TableSpec, before: dict[str, Any], after: dict[str, Any]
) -> Change | None:
    if not after or set(after) <= spec.ignore_updates_of:
        return None
    action = spec.updated
    if isinstance(row, ApiKey) and after.get("revoked_at") and not before.get("revoked_at"):
        action = "api_key_revoked"
    return Change(action, spec.entity, spec.entity_id(row), spec.actor(row), before, after)


def note_created(session: Session, row: Any) -> None:
    """Chain a row inserted by a plain statement (the flush hook below never sees it), with
    the link a flushed insert gets."""
    spec = spec_for(type(row))
    if spec is not None and spec.created:
        _pend(session, [_created(row, spec)])


def note_changed(session: Session, row: Any, old: dict[str, Any], new: dict[str, Any]) -> None:
    """Chain a row updated by a plain statement from `old` to `new` (the columns written),
    with the link a flushed update gets."""
    spec = spec_for(type(row))
    if spec is None or spec.updated is None:
        return
    before: dict[str, Any] = {}
    after: dict[str, Any] = {}
    for name in _columns(row, spec):
        if name in new:
            _compare(name, old.get(name), new[name], before, after)
    change = _updated(row, spec, before, after)
    if change is not None:
        _pend(session, [change])


def note_event(
    session: Session,
    action: str,
    entity: tuple[str, str],
    before: dict[str, Any] | None,
    after: dict[str, Any] | None,
) -> None:
    """Chain a change that no audited table's row shows: `entity` is (type, id), e.g. a
    receivable the ERP owns whose dunning level a sweep raised."""
    entity_type, entity_id = entity
    _pend(session, [Change(action, entity_type, entity_id, None, before, after)])


def _changes_in_flush(session: Session) -> list[Change]:
    changes = _history_changes(row for row in session.new if isinstance(row, InstanceEvent))
    for row in session.new:
        spec = spec_for(type(row))
        if spec is None or isinstance(row, InstanceEvent):
            continue
        if spec.created:
            changes.append(_created(row, spec))
    for row in session.dirty:
        spec = spec_for(type(row))
        if spec is None or spec.updated is None or not session.is_modified(row):
            continue
        change = _updated(row, spec, *_diff(row, spec))
        if change is not None:
            changes.append(change)
    for row in session.deleted:
        spec = spec_for(type(row))
        if spec is None or spec.deleted is None:
            continue
        changes.append(
            Change(spec.deleted, spec.entity, spec.entity_id(row), None, _snapshot(row, spec), None)
        )
    return changes


# The chain ----------------------------------------------------------------------------------


def canonical(content: dict[str, Any]) -> bytes:
    return canonical_value(content)


def canonical_value(value: Any) -> bytes:
    return json.dumps(
        value,
        sort_keys=True,
        separators=(",", ":"),
        ensure_ascii=False,
        allow_nan=False,
        default=lambda v: jsonable(v),
    ).encode()


def link_content(row: Any) -> dict[str, Any]:
    """The hashed fields of one link, from a mapping or an AuditEvent row."""
    get = row.get if isinstance(row, dict) else lambda name: getattr(row, name)
    return {
        "seq": get("seq"),
        "at": get("at").astimezone(UTC).isoformat(),
        "actor": get("actor"),
        "via": get("via"),
        "action": get("action"),
        "entity_type": get("entity_type"),
        "entity_id": get("entity_id"),
        "before": get("before"),
        "after": get("after"),
        "context": get("context"),
        "prev_hash": get("prev_hash"),
    }


def link_hash(row: Any) -> str:
    return hashlib.sha256(canonical(link_content(row))).hexdigest()


# Read by every command, so sent straight to the driver (nothing to compile, bind or type).
_HEAD = "SELECT seq, hash FROM audit_event ORDER BY seq DESC LIMIT 1"

_APPEND = insert(AuditEvent.__table__)
# PostgreSQL: take the appenders' lock and read the head in one round trip. Sent as one simple
# query, each statement gets its own snapshot (READ COMMITTED), so the head is read after the
# lock is granted and includes whatever the appender before committed.
_PG_LOCKED_HEAD = f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY}); {_HEAD}"


def _chain_head(connection: Any) -> tuple[int, str]:
    """The last link's seq and hash, under the appenders' lock; (0, GENESIS) for none."""
    if connection.dialect.name == "postgresql":
        with connection.connection.driver_connection.cursor() as cursor:
            cursor.execute(_PG_LOCKED_HEAD)
            cursor.nextset()
            last = cursor.fetchone()
    else:
        last = connection.connection.driver_connection.execute(_HEAD).fetchone()
    return (last[0], last[1]) if last is not None else (0, GENESIS)


def _append(session: Session, changes: list[Change]) -> None:
    connection = session.connection()
    seq, prev = _chain_head(connection)
    who = AUDIT_CONTEXT.get()
    # The same for every link of one commit: built once, not per link.
    actor, via = (who.actor, who.via) if who else (None, None)
    context = jsonable(who.details) if who else {}
    # Microseconds survive both SQLite text and PostgreSQL timestamptz, so the hash round-trips.
    now = datetime.now(UTC)
    at = now.isoformat()
    rows = []
    for change in changes:
        seq += 1
        # Exactly link_content() of the stored row, so verify_chain recomputes the same hash.
        content: dict[str, Any] = {
            "seq": seq,
            "at": at,
            "actor": actor or change.row_actor or "system",
            "via": via,
            "action": change.action,
            "entity_type": change.entity_type,
            "entity_id": change.entity_id[:400],
            "before": change.before,
            "after": change.after,
            "context": context,
            "prev_hash": prev,
        }
        prev = hashlib.sha256(canonical(content)).hexdigest()
        rows.append({**content, "at": now, "hash": prev})
    connection.execute(_APPEND, rows)


class AuditedSession(Session):
    """The session every unit of work uses; its changes to audited tables join the chain."""


@event.listens_for(AuditedSession, "after_flush")
def _note_changes(session: Session, _flush_context: Any) -> None:
    changes = _changes_in_flush(session)
    if changes:
        _pend(session, changes)


@event.listens_for(AuditedSession, "before_commit")
def _write_chain(session: Session) -> None:
    if session.in_nested_transaction():
        # A savepoint released inside a command: the command's own commit writes the chain,
        # once, with one read of the chain head.
        return
    session.flush()
    pending = session.info.pop(PENDING, None)
    if pending:
        _append(session, [change for _, change in pending])


def _inside(savepoint: Any, rolled_back: Any) -> bool:
    while savepoint is not None:
        if savepoint is rolled_back:
            return True
        savepoint = savepoint.parent
    return False


@event.listens_for(AuditedSession, "after_soft_rollback")
def _forget_changes(session: Session, previous_transaction: Any) -> None:
    if not previous_transaction.nested:
        session.info.pop(PENDING, None)
        return
    pending = session.info.get(PENDING)
    if pending:
        session.info[PENDING] = [
            (savepoint, change)
            for savepoint, change in pending
            if not _inside(savepoint, previous_transaction)
        ]


# Reading and verifying ----------------------------------------------------------------------


@dataclass(frozen=True)
class Verification:
    ok: bool
    checked: int
    head_seq: int
    head_hash: str
    broken_at: int | None = None
    reason: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "head": {"seq": self.head_seq, "hash": self.head_hash},
            "broken_at": self.broken_at,
            "reason": self.reason,
        }


def verify_chain(session: Session, batch: int = 1000) -> Verification:
    """Recompute every link in order; the first row whose content, hash or link is wrong fails.

    A deleted row shows as a gap in `seq` (the next row's prev_hash no longer matches either).
    Truncating the newest rows cannot be seen from the chain alone: compare the head seq and
    hash with one noted earlier (e.g. in the auditor's report) for that.
    """
    expected_seq, prev, checked = 1, GENESIS, 0
    while True:
        rows = session.execute(
            select(AuditEvent)
            .where(AuditEvent.seq >= expected_seq)
            .order_by(AuditEvent.seq)
            .limit(batch)
        ).scalars()
        rows = list(rows)
        if not rows:
            return Verification(True, checked, expected_seq - 1, prev)
        for row in rows:
            if row.seq != expected_seq:
                return _broken(
                    checked,
                    expected_seq,
                    prev,
                    row.seq,
                    f"rows {expected_seq}..{row.seq - 1} are missing",
                )
            if row.prev_hash != prev:
                return _broken(
                    checked,
                    expected_seq,
                    prev,
                    row.seq,
                    "prev_hash does not match the previous row's hash",
                )
            if link_hash(row) != row.hash:
                return _broken(
                    checked,
                    expected_seq,
                    prev,
                    row.seq,
                    "content does not match its hash (row was edited)",
                )
            prev, expected_seq, checked = row.hash, row.seq + 1, checked + 1
        session.expunge_all()


def _broken(checked: int, next_seq: int, prev: str, seq: int, reason: str) -> Verification:
    return Verification(False, checked, next_seq - 1, prev, broken_at=seq, reason=reason)


def event_as_dict(row: AuditEvent) -> dict[str, Any]:
    return {**link_content(row), "hash": row.hash}


def query_events(
    entity: str | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
) -> Any:
    """Events in chain order; `entity` is a type (`instance`) or type and id (`instance:ab12`)."""
    stmt = select(AuditEvent).order_by(AuditEvent.seq)
    if entity:
        entity_type, _, entity_id = entity.partition(":")
        stmt = stmt.where(AuditEvent.entity_type == entity_type)
        if entity_id:
            stmt = stmt.where(AuditEvent.entity_id == entity_id)
    if start is not None:
        stmt = stmt.where(AuditEvent.at >= start)
    if end is not None:
        stmt = stmt.where(AuditEvent.at < end)
    return stmt
