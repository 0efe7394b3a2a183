"""Engine commands: start, complete_task, deliver_message, fire_timer, cancel, retry.

Each is one transaction (DESIGN §2): load and lock the instance, run engine steps until every
token waits, write state, projections, history and outbox rows, commit. A failing step leaves
the instance at its last clean point with an incident instead of losing the command.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from collections.abc import Callable
from contextlib import nullcontext
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.camunda.specs.event_definitions import MessageEventDefinition
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, select, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from engine.definitions.catalog import DefinitionCatalog
from engine.errors import ConcurrentUpdate, Conflict, Forbidden, NotFound, ValidationFailed
from engine.runtime import inbox
from engine.runtime.context import executing
from engine.runtime.execution import (
    DecisionMaker,
    Execution,
    Incident,
    NoRules,
    StepFailed,
    guarded_steps,
)
from engine.runtime.forms import validate_form
from engine.runtime.projection import (
    EVENT_SUBPROCESS_PREFIX,
    clear_projections,
    event_subprocess_starts,
    stored_kinds,
    sync_projections,
)
from engine.runtime.state import dump_state, load_state, to_json_safe
from engine.runtime.workflow import FlowgateWorkflow, prune_finished_rounds
from engine.sandbox import make_script_engine
from engine.services import ServiceRegistry
from engine.store.history import append_history
from engine.store.instances import save_instance
from engine.store.outbox import append_outbox
from engine.store.tables import (
    BufferedMessage,
    CorrelationAlias,
    HumanTask,
    IdempotencyRecord,
    Instance,
    MessageSubscription,
    Timer,
)
from engine.store.uow import UnitOfWork, UnitOfWorkFactory

T = TypeVar("T")

# Statements every command runs, built once: building them per call (and matching their results
# to new ORM column objects) cost ~0.1 ms each, more than SQLite took to run them.
_INSTANCE = select(Instance).where(Instance.id == bindparam("instance_id"))
_INSTANCE_LOCKED = {
    False: _INSTANCE.with_for_update(),
    True: _INSTANCE.with_for_update(skip_locked=True),
}


def _oldest(entity: Any, keyed: bool, *where: Any) -> Any:
    """The oldest row of `entity` for a message name and correlation key. Two statements, keyed
    and not, rather than IS NOT DISTINCT FROM, which PostgreSQL cannot answer from an index: a
    message without a key matches only rows without one (IS NULL, not = NULL)."""
    key = bindparam("key") if keyed else None
    return (
        select(entity)
        .where(entity.message_name == bindparam("name"), entity.correlation_key == key, *where)
        .order_by(entity.id)
        .limit(1)
    )


_SUBSCRIBED = {keyed: _oldest(MessageSubscription, keyed) for keyed in (True, False)}
_BUFFERED = {
    keyed: _oldest(
        BufferedMessage,
        keyed,
        BufferedMessage.expires_at > bindparam("now"),
        BufferedMessage.expired_at.is_(None),
    )
    for keyed in (True, False)
}
_BUFFERED_LOCKED = {
    keyed: stmt.with_for_update(skip_locked=True) for keyed, stmt in _BUFFERED.items()
}
MAX_BUFFERED_DELIVERIES = 20
# PostgreSQL advisory locks per message name and correlation key (_hold_message_keys): the
# first of the two int4 keys, so they never meet the audit chain's single bigint key.
_MESSAGE_LOCK_SPACE = 0x46474D42  # ASCII "FGMB"
_MESSAGE_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")
# What inflating an instance ahead of the write lock needs of its row (no ORM object).
_STORED_STATE = select(Instance.lock_version, Instance.definition_id, Instance.state).where(
    Instance.id == bindparam("instance_id")
)
# A completion reads its task first, in a new session: `session.get` would build this per call.
_TASK = select(HumanTask).where(HumanTask.id == bindparam("task_id"))
_TASK_INSTANCE = select(HumanTask.instance_id).where(HumanTask.id == bindparam("task_id"))
# What an answer shows of an instance when no command has just written it (a GET).
_SHOWN = {
    "tasks": select(HumanTask).where(
        HumanTask.instance_id == bindparam("instance_id"), HumanTask.status == "open"
    ),
    "timers": select(Timer).where(Timer.instance_id == bindparam("instance_id")),
    "subscriptions": select(MessageSubscription).where(
        MessageSubscription.instance_id == bindparam("instance_id")
    ),
}


@dataclass(frozen=True)
class Actor:
    """Who issues a command: a user with roles and groups, or a system key."""

    user: str
    roles: frozenset[str] = frozenset()
    groups: frozenset[str] = frozenset()

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def in_any(self, names: list[str]) -> bool:
        return bool((self.roles | self.groups) & set(names))


SYSTEM = Actor("flowgate", frozenset({"system"}))


@dataclass
class Runtime:
    """The engine's dependencies, wired once by the composition root."""

    uow: UnitOfWorkFactory
    catalog: DefinitionCatalog
    services: ServiceRegistry
    rules: DecisionMaker = field(default_factory=NoRules)
    clock: Callable[[], datetime] = lambda: datetime.now(UTC)
    message_ttl: timedelta = timedelta(minutes=10)
    # Per message name, where the default is wrong for the business (an invoice before goods).
    message_ttls: dict[str, timedelta] = field(default_factory=dict)
    max_attempts: int = 5
    # Named checks a user task opts into with its `guard` property (e.g. segregation of
    # duties): guard(execution, task_row, user, task_data) raises Forbidden to refuse.
    completion_guards: dict[str, Callable[..., None]] = field(default_factory=dict)
    # What to do with the ERP's answer to an outbox event, by event type (e.g. `po.issued`
    # answered with the ERP's own PO number): reply(uow, outbox_row, answer_json).
    outbox_replies: dict[str, Callable[..., None]] = field(default_factory=dict)


def request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, default=str).encode()).hexdigest()


def _replaying(attempt: Callable[[], T]) -> T:
    """Run a command; if one of its steps failed, or the database refused what it wrote, run
    it again with a savepoint per step.

    The first run leaves savepoints out (see Execution.run_steps); leaving the unit of work on
    StepFailed rolled all of it back, so the second run starts where the first did.
    """
    try:
        return attempt()
    except StepFailed:
        pass
    except (DBAPIError, OverflowError) as exc:
        # A row a step queued, refused when the command saved: run again with the steps
        # guarded, which flush after each service so the refusal lands on the step that queued
        # it (an incident). Unique-key races are _with_retry's to run again as they were.
        if isinstance(exc, IntegrityError):
            raise
    with guarded_steps():
        return attempt()


def _with_retry(rt: Runtime, attempt: Callable[[], T]) -> T:
    """Re-run a command that lost an optimistic-lock or unique-key race."""
    for n in range(rt.max_attempts):
        try:
            return _replaying(attempt)
        except (StaleDataError, IntegrityError, ConcurrentUpdate):
            if n == rt.max_attempts - 1:
                raise ConcurrentUpdate("the instance is busy; try again") from None
    raise AssertionError("unreachable")


# Loading and saving -------------------------------------------------------------------------


@dataclass
class _Ahead:
    """An instance inflated before the command took SQLite's write lock, for it to take once.

    SQLite admits one writer, so whatever a command does under the lock is what two workers
    cannot do at once. Inflating the stored workflow (decompress, JSON, SpiffWorkflow's
    `from_dict`) needs no lock: it is done beforehand in a read transaction, and used only if
    the row still has the version it was read at. Taken once, because a command run again
    (`_replaying`) must start from the stored state, not from what its first run changed.
    """

    instance_id: str | None = None
    lock_version: int | None = None
    workflow: BpmnWorkflow | None = None

    def take(self, instance: Instance) -> BpmnWorkflow | None:
        workflow, self.workflow = self.workflow, None
        if instance.id != self.instance_id or instance.lock_version != self.lock_version:
            return None
        return workflow


def _inflate_ahead(rt: Runtime, find: Callable[[UnitOfWork], str | None]) -> _Ahead:
    """On SQLite, the instance `find` names inflated outside the write lock; on PostgreSQL
    nothing (a command locks only its own instance's row there, so this would only add a
    round trip)."""
    if not rt.uow.sqlite:
        return _Ahead()
    with rt.uow(write=False) as uow:
        instance_id = find(uow)
        if instance_id is None:
            return _Ahead()
        row = uow.session.execute(_STORED_STATE, {"instance_id": instance_id}).one_or_none()
        if row is None:
            return _Ahead()
        try:
            definition = rt.catalog.loaded(uow, row.definition_id)
            workflow = _stored_workflow(row, definition)
        except Exception:  # the load under the lock meets it again and reports it
            return _Ahead()
    return _Ahead(instance_id, row.lock_version, workflow)


def _load(
    rt: Runtime,
    uow: UnitOfWork,
    instance_id: str,
    actor: Actor,
    skip_locked: bool = False,
    ahead: _Ahead | None = None,
):
    stmt = _INSTANCE if uow.sqlite else _INSTANCE_LOCKED[skip_locked]
    instance = uow.session.execute(stmt, {"instance_id": instance_id}).scalar_one_or_none()
    if instance is None:
        if skip_locked:
            return None
        raise NotFound(f"no instance '{instance_id}'")
    definition = rt.catalog.loaded(uow, instance.definition_id)
    workflow = (ahead and ahead.take(instance)) or _stored_workflow(instance, definition)
    return Execution(
        uow=uow,
        instance=instance,
        definition=definition,
        workflow=workflow,
        services=rt.services,
        rules=rt.rules,
        actor=actor.user,
        now=rt.clock(),
        stored_kinds=stored_kinds(workflow),
    )


def _stored_workflow(instance: Any, definition: Any) -> BpmnWorkflow:
    """The instance (its row, or the row's `state` read ahead) as last saved, ready to run
    (scripts in the sandbox)."""
    workflow = load_state(instance.state, definition.spec, definition.subprocess_specs)
    workflow.script_engine = make_script_engine()
    return workflow


def _variables(workflow: BpmnWorkflow) -> dict[str, Any]:
    """The process variables a person would expect: the data where the tokens now are."""
    return to_json_safe(_current_data(workflow))


def _current_data(workflow: BpmnWorkflow) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    active = workflow.get_tasks(state=TaskState.READY | TaskState.WAITING | TaskState.STARTED)
    sources = [t for t in active if t.task_spec.bpmn_id] or (
        [workflow.last_task] if workflow.last_task is not None else []
    )
    for task in sources:
        merged.update(task.data)
    return merged


def _save(rt: Runtime, ex: Execution, incident: Incident | None) -> None:
    for _ in range(MAX_BUFFERED_DELIVERIES):
        new_subscriptions = _save_once(ex, incident)
        if incident is not None or not new_subscriptions:
            break
        buffered = _buffered_for(ex, new_subscriptions)
        if buffered is None:
            break
        # A savepoint, so that a buffered message whose payload turns out unusable can be
        # handed back without undoing the command that made the instance wait for it.
        savepoint = ex.uow.session.begin_nested()
        ex.uow.session.delete(buffered)
        try:
            with _refusing_message(ex, buffered.message_name):
                incident = _catch_message(
                    ex, buffered.message_name, buffered.payload, buffered.message_id
                )
        except ValidationFailed as refused:
            savepoint.rollback()
            _hand_back(ex, buffered, refused)
            incident = None
        else:
            savepoint.commit()


def _refusing_message(ex: Execution, name: str) -> Any:
    """While message `name` is caught, a step that cannot use its payload refuses it."""
    return ex.refusing_bad(f"message '{name}'", {name: "payload"})


def _hand_back(ex: Execution, buffered: BufferedMessage, refused: ValidationFailed) -> None:
    """A buffered message the process cannot use: the instance goes back to waiting as it was
    saved, and the message goes back to the ERP (`message.refused`) with the fields to fix.
    It was accepted with a 202 long ago, so there is no request left to answer with a 422."""
    ex.workflow = _stored_workflow(ex.instance, ex.definition)
    ex.events, ex.outbox = [], []
    buffered.expired_at = ex.now  # never caught again; kept for the auditor
    ex.record(
        "message_refused",
        None,
        name=buffered.message_name,
        message_id=buffered.message_id,
        errors=refused.errors,
    )
    ex.emit(
        "message.refused",
        {**buffered.as_event(), "detail": refused.detail, "errors": refused.errors},
        key=f"message-refused:{buffered.id}",
    )


def _save_once(ex: Execution, incident: Incident | None) -> list[MessageSubscription]:
    instance, workflow = ex.instance, ex.workflow
    values: dict[str, Any] = {}
    if instance.status == "cancelled":
        pass
    elif ex.cancelled:
        values.update(status="cancelled", ended_at=ex.now)
    elif incident is not None:
        values.update(status="incident", incident=incident.as_dict(ex.now))
    elif workflow.is_completed():
        values.update(status="completed", incident=None, ended_at=ex.now)
        ex.record("instance_completed")
    else:
        values.update(status="running", incident=None)
    prune_finished_rounds(workflow)
    values.update(state=dump_state(workflow), variables=_variables(workflow), updated_at=ex.now)
    # Before the projections: their rows refer to the instance's.
    save_instance(ex.uow.session, instance, values)
    if instance.status in ("completed", "cancelled"):
        clear_projections(ex)
        subscriptions: list[MessageSubscription] = []
    else:
        subscriptions = sync_projections(ex)
    ex.uow.session.flush()
    append_history(ex.uow.session, ex.events)
    append_outbox(ex.uow.session, ex.outbox)
    ex.events, ex.outbox = [], []
    # Its projections are stored now: a buffered message caught next in this same command
    # must find (and, if the instance ends, delete) the subscription just written.
    ex.stored_kinds = None
    return subscriptions


def _hold_message_keys(uow: UnitOfWork, pairs: list[tuple[str, str | None]]) -> None:
    """PostgreSQL: one command at a time per message name and key, of those that file a
    message in the buffer and those that subscribe and then look in it. Held until commit.

    Without it a message could come while an instance was subscribing: its lookup would not
    see the uncommitted subscription, it would be buffered after the instance had looked in
    the buffer, and each would wait for the other until the message expired. SQLite's write
    lock already runs such commands one at a time. Taken in a fixed order, so that two
    commands locking several keys cannot wait for each other.
    """
    if uow.sqlite:
        return
    keys = set()
    for name, key in pairs:
        digest = hashlib.sha256(f"{name}\x00{key if key is not None else ''}".encode()).digest()
        keys.add(int.from_bytes(digest[:4], "big", signed=True))
    for key in sorted(keys):
        uow.session.execute(_MESSAGE_LOCK, {"space": _MESSAGE_LOCK_SPACE, "key": key})


def _buffered_for(
    ex: Execution, subscriptions: list[MessageSubscription]
) -> BufferedMessage | None:
    _hold_message_keys(ex.uow, [(sub.message_name, sub.correlation_key) for sub in subscriptions])
    statements = _BUFFERED if ex.uow.sqlite else _BUFFERED_LOCKED
    for sub in subscriptions:
        stmt = statements[sub.correlation_key is not None]
        params = {"name": sub.message_name, "key": sub.correlation_key, "now": ex.now}
        buffered = ex.uow.session.execute(stmt, params).scalar_one_or_none()
        if buffered is not None:
            return buffered
    return None


def _catch_message(
    ex: Execution, name: str, payload: dict[str, Any], message_id: str | None
) -> Incident | None:
    event = BpmnEvent(
        MessageEventDefinition(name), payload={"payload": payload, "result_var": name}
    )
    root = ex.workflow.task_tree
    starts = [eid for eid, message in event_subprocess_starts(ex.workflow) if message == name]
    if starts:
        # SpiffWorkflow starts an event subprocess from the process's root task; give it the
        # data where the tokens are, as BPMN's event subprocess sees its parent's variables.
        root.data.update(deepcopy(_current_data(ex.workflow)))
    interrupting = any(ex.elements.get(eid, {}).get("interrupting", False) for eid in starts)
    running = list(root.children) if interrupting else []
    caught = ex.workflow.event_manager.catch(event, internal=False)
    if not caught:
        raise Conflict(f"instance {ex.instance.id} is not waiting for message '{name}'")
    for branch in running:
        # An interrupting event subprocess ends everything else the process was doing
        # (BPMN); SpiffWorkflow 3.2 only starts it, so cancel the branches that ran before.
        branch.cancel()
    ex.record("message_received", None, name=name, message_id=message_id)
    return ex.run_steps()


def instance_summary(
    uow: UnitOfWork, instance: Instance, projected: dict[str, list[Any]] | None = None
) -> dict[str, Any]:
    """The answer to a command or a GET; `projected` (from the command just run) saves queries."""
    if projected is None:
        params = {"instance_id": instance.id}
        projected = {
            name: list(uow.session.execute(stmt, params).scalars()) for name, stmt in _SHOWN.items()
        }
    tasks, timers, subs = projected["tasks"], projected["timers"], projected["subscriptions"]
    messages: dict[bool, list[dict[str, Any]]] = {True: [], False: []}
    for sub in subs:
        # An event subprocess listens for as long as the instance runs (an order can be
        # cancelled at any stage): listening, not what the instance is waiting for.
        messages[sub.task_id.startswith(EVENT_SUBPROCESS_PREFIX)].append(
            {
                "type": "message",
                "name": sub.message_name,
                "correlation_key": sub.correlation_key,
                "element_id": sub.element_id,
            }
        )
    waiting = messages[False] + [
        {"type": "timer", "element_id": t.element_id, "due_at": t.due_at.isoformat()}
        for t in timers
    ]
    return {
        "id": instance.id,
        "process_key": instance.process_key,
        "version": instance.version,
        "business_key": instance.business_key,
        "status": instance.status,
        "incident": instance.incident,
        "active_tasks": [
            {
                "id": t.id,
                "element_id": t.element_id,
                "name": t.name,
                "assignee": t.assignee,
                "candidate_groups": t.candidate_groups,
            }
            for t in tasks
        ],
        "waiting_for": waiting,
        "listening_for": messages[True],
    }


# Commands ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    status_code: int
    body: dict[str, Any]


def _idempotent(uow: UnitOfWork, scope: str, key: str | None, digest: str) -> Result | None:
    if key is None:
        return None
    record = uow.session.get(IdempotencyRecord, (scope, key))
    if record is None:
        return None
    if record.request_hash != digest:
        raise Conflict(f"{scope} key '{key}' was already used with a different request")
    return Result(200 if record.status_code == 201 else record.status_code, record.response)


def _remember(uow: UnitOfWork, scope: str, key: str | None, digest: str, result: Result) -> None:
    if key is not None:
        uow.session.add(
            IdempotencyRecord(
                scope=scope,
                key=key,
                request_hash=digest,
                status_code=result.status_code,
                response=result.body,
            )
        )


def start(
    rt: Runtime,
    process_key: str,
    business_key: str | None,
    variables: dict[str, Any],
    actor: Actor,
    idempotency_key: str | None = None,
    version: int | None = None,
) -> Result:
    digest = request_hash(
        {
            "process_key": process_key,
            "business_key": business_key,
            "variables": variables,
            "version": version,
        }
    )

    def attempt() -> Result:
        with rt.uow() as uow:
            previous = _idempotent(uow, "start", idempotency_key, digest)
            if previous is not None:
                return previous
            result = start_within(
                rt,
                uow,
                process_key,
                business_key,
                variables,
                actor,
                version,
                replayable=True,
                refuse_bad_variables=True,
            )
            _remember(uow, "start", idempotency_key, digest, result)
            uow.commit()
            return result

    return _with_retry(rt, attempt)


def start_within(
    rt: Runtime,
    uow: UnitOfWork,
    process_key: str,
    business_key: str | None,
    variables: dict[str, Any],
    actor: Actor,
    version: int | None = None,
    replayable: bool = False,
    refuse_bad_variables: bool = False,
) -> Result:
    """Start an instance inside a unit of work the caller commits, with whatever else it
    writes (a risk review with the downgrade that raised it). Unless the caller can run it all
    again on StepFailed (`start` can), its steps run with their savepoints. With
    `refuse_bad_variables` (the ERP's start hook), a step that cannot use a start variable
    refuses the start (ValidationFailed) rather than leaving an instance in an incident."""
    with nullcontext() if replayable else guarded_steps():
        definition = rt.catalog.latest_loaded(uow, process_key, version)
        workflow = FlowgateWorkflow(
            definition.spec, definition.subprocess_specs, script_engine=make_script_engine()
        )
        for task in workflow.get_tasks(state=TaskState.READY):
            task.data.update(variables)
        instance = Instance(
            id=uuid.uuid4().hex,
            definition_id=definition.id,
            process_key=definition.key,
            version=definition.version,
            business_key=business_key,
            status="running",
            state=b"",
            variables={},
            started_by=actor.user,
            created_at=rt.clock(),
            updated_at=rt.clock(),
        )
        # Not added to the session: the save inserts it with its state, in one statement
        # instead of an INSERT and an UPDATE (and one audit link instead of two).
        ex = Execution(
            uow,
            instance,
            definition,
            workflow,
            rt.services,
            rt.rules,
            actor.user,
            rt.clock(),
            stored_kinds=frozenset(),
        )
        ex.record("instance_started", None, business_key=business_key)
        refusing = (
            ex.refusing_bad(f"the start of '{definition.key}'", {"": "variables"})
            if refuse_bad_variables
            else nullcontext()
        )
        with refusing:
            incident = ex.run_steps()
        _save(rt, ex, incident)
        return Result(201, instance_summary(uow, instance, ex.projected))


def _run_completion_guard(
    rt: Runtime, ex: Execution, row: HumanTask, actor: Actor, data: dict[str, Any]
) -> None:
    name = (row.properties or {}).get("guard")
    if not name:
        return
    guard = rt.completion_guards.get(name)
    if guard is None:
        # Fail closed: a model that asks for a check nobody wired must not skip it.
        raise Forbidden(f"task {row.id} needs the '{name}' completion check, which is not wired")
    guard(ex, row, actor.user, data)


def complete_task(rt: Runtime, task_id: str, variables: dict[str, Any], actor: Actor) -> Result:
    ahead = _inflate_ahead(
        rt, lambda uow: uow.session.execute(_TASK_INSTANCE, {"task_id": task_id}).scalar()
    )

    def attempt() -> Result:
        with rt.uow() as uow:
            row = uow.session.execute(_TASK, {"task_id": task_id}).scalar_one_or_none()
            if row is None:
                raise NotFound(f"no task '{task_id}'")
            inbox.check_can_complete(uow.session, row, actor, rt.clock())
            values = validate_form(row.form, variables)
            ex = _load(rt, uow, row.instance_id, actor, ahead=ahead)
            task = ex.workflow.get_task_from_id(uuid.UUID(task_id))
            if task is None or task.state != TaskState.READY:
                raise Conflict(f"task {task_id} is no longer open")
            if not uow.sqlite:
                # Under the instance lock now: a claim or delegation may have landed meanwhile.
                # (SQLite's write lock was taken before the task row was first read.)
                uow.session.refresh(row)
                inbox.check_can_complete(uow.session, row, actor, ex.now)
            _run_completion_guard(rt, ex, row, actor, {**task.data, **values})
            task.data.update(values)
            task.run()
            row.completed_by = actor.user
            inbox.close(uow.session, row, "completed", ex.now)
            ex.outbox.append(
                inbox.task_event(row, "task.completed", ex.now, completed_by=actor.user)
            )
            ex.completed_task_ids.add(task_id)
            ex.record("task_completed", row.element_id, task_id=task_id, variables=sorted(values))
            incident = ex.run_steps()
            _save(rt, ex, incident)
            result = Result(200, instance_summary(uow, ex.instance, ex.projected))
            uow.commit()
            return result

    return _with_retry(rt, attempt)


def canonical_key(session: Any, key: str) -> str | None:
    """The correlation key `key` stands for, when it is an alias (e.g. the ERP's PO number)."""
    alias = session.get(CorrelationAlias, key)
    return alias.canonical if alias is not None else None


def _subscription(uow: UnitOfWork, name: str, key: str | None) -> MessageSubscription | None:
    stmt = _SUBSCRIBED[key is not None]
    return uow.session.execute(stmt, {"name": name, "key": key}).scalar_one_or_none()


def _waiting(
    uow: UnitOfWork, name: str, key: str | None
) -> tuple[MessageSubscription | None, str | None]:
    """The subscription a message goes to, and the correlation key it is filed under."""
    sub = _subscription(uow, name, key)
    if sub is None and key is not None:
        # The sender may use its own number for the key (CorrelationAlias); only a message
        # nobody waits for under the given key pays for the lookup.
        canonical = canonical_key(uow.session, key)
        if canonical is not None:
            return _subscription(uow, name, canonical), canonical
    return sub, key


def deliver_message(
    rt: Runtime,
    name: str,
    correlation_key: str | None,
    payload: dict[str, Any],
    message_id: str | None,
    actor: Actor,
) -> Result:
    digest = request_hash({"name": name, "correlation_key": correlation_key, "payload": payload})

    def waiting_instance(uow: UnitOfWork) -> str | None:
        sub, _key = _waiting(uow, name, correlation_key)
        return sub.instance_id if sub is not None else None

    ahead = _inflate_ahead(rt, waiting_instance)

    def attempt() -> Result:
        with rt.uow() as uow:
            previous = _idempotent(uow, "message", message_id, digest)
            if previous is not None:
                return Result(previous.status_code, previous.body)
            sub, key = _waiting(uow, name, correlation_key)
            if sub is None and not uow.sqlite:
                _hold_message_keys(uow, [(name, key)])
                if _waiting(uow, name, correlation_key)[0] is not None:
                    # Subscribed while this waited for the lock: delivered on the next attempt,
                    # which does not hold the lock while it waits for the instance.
                    raise ConcurrentUpdate(f"instance subscribed to '{name}' meanwhile")
            now = rt.clock()
            if sub is None:
                expires = now + rt.message_ttls.get(name, rt.message_ttl)
                uow.session.add(
                    BufferedMessage(
                        message_name=name,
                        correlation_key=key,
                        message_id=message_id,
                        payload=payload,
                        received_at=now,
                        expires_at=expires,
                    )
                )
                result = Result(202, {"status": "buffered", "expires_at": expires.isoformat()})
            else:
                ex = _load(rt, uow, sub.instance_id, actor, ahead=ahead)
                with _refusing_message(ex, name):
                    incident = _catch_message(ex, name, payload, message_id)
                # Buffered messages caught while saving were answered (202) long ago: a bad one
                # goes back to the ERP as an event (_hand_back), not as this request's 422.
                _save(rt, ex, incident)
                result = Result(
                    200,
                    {
                        "status": "delivered",
                        "instance_id": ex.instance.id,
                        "instance_status": ex.instance.status,
                    },
                )
            _remember(uow, "message", message_id, digest, result)
            uow.commit()
            return result

    return _with_retry(rt, attempt)


def fire_timer(rt: Runtime, timer_id: int) -> bool:
    """Fire one due timer; False when another worker has it or it is already gone."""

    def attempt() -> bool:
        with rt.uow() as uow:
            timer = uow.session.get(Timer, timer_id)
            if timer is None or timer.due_at > rt.clock():
                return False
            ex = _load(rt, uow, timer.instance_id, SYSTEM, skip_locked=True)
            if ex is None:
                return False
            # Re-read under the instance lock: another scheduler may have fired it meanwhile.
            uow.session.expire(timer)
            if uow.session.get(Timer, timer_id) is None:
                return False
            task = ex.workflow.get_task_from_id(uuid.UUID(timer.task_id))
            if task is None or task.state != TaskState.WAITING:
                uow.session.delete(timer)
                uow.commit()
                return False
            ex.record("timer_fired", timer.element_id, due_at=timer.due_at)
            # SpiffWorkflow fires a timer only strictly after its due time, while the row is due at
            # `due_at <= now`; an injected clock often stands exactly on the due time.
            ex.now = max(ex.now, timer.due_at + timedelta(microseconds=1))
            with executing(ex):
                ex.workflow.refresh_timers()
            incident = ex.run_steps()
            try:
                _save(rt, ex, incident)
                uow.commit()
            except StaleDataError:
                return False
            return True

    return _replaying(attempt)


def cancel(rt: Runtime, instance_id: str, reason: str, actor: Actor) -> Result:
    def attempt() -> Result:
        with rt.uow() as uow:
            ex = _load(rt, uow, instance_id, actor)
            if ex.instance.status in ("completed", "cancelled"):
                raise Conflict(f"instance {instance_id} is already {ex.instance.status}")
            ex.workflow.cancel()
            ex.cancelled = True
            ex.record("instance_cancelled", None, reason=reason)
            _save(rt, ex, None)
            result = Result(200, instance_summary(uow, ex.instance, ex.projected))
            uow.commit()
            return result

    return _replaying(attempt)


def retry(rt: Runtime, instance_id: str, actor: Actor) -> Result:
    def attempt() -> Result:
        with rt.uow() as uow:
            ex = _load(rt, uow, instance_id, actor)
            if ex.instance.status != "incident":
                raise Conflict(f"instance {instance_id} has no incident to retry")
            ex.record("incident_retried", (ex.instance.incident or {}).get("element_id"))
            incident = ex.run_steps()
            _save(rt, ex, incident)
            result = Result(200, instance_summary(uow, ex.instance, ex.projected))
            uow.commit()
            return result

    return _replaying(attempt)
