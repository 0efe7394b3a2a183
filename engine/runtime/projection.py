"""Write the queryable projections of a workflow: human tasks, timers, message subscriptions.

Each is diffed against what is stored, so a command touches only rows that changed and a
long-running instance costs the same per command as a new one.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any
from uuid import uuid5

from SpiffWorkflow.bpmn.specs.event_definitions.message import MessageEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.multiple import MultipleEventDefinition
from SpiffWorkflow.bpmn.specs.event_definitions.timer import (
    CycleTimerEventDefinition,
    TimerEventDefinition,
)
from SpiffWorkflow.util.task import TaskState
from sqlalchemy import bindparam, delete, select

from engine.definitions.camunda import expression_body, split_list
from engine.definitions.durations import due_from
from engine.escalation import first_check_at, sla_business_days
from engine.runtime import inbox
from engine.runtime.execution import Execution
from engine.sandbox import evaluate_expression
from engine.store.inserts import insert_loaded
from engine.store.tables import HumanTask, MessageSubscription, Timer


def resolve(value: str | None, data: dict[str, Any]) -> Any:
    """A Camunda attribute: literal text, or `${expr}` evaluated in the sandbox."""
    body = expression_body(value)
    if body is None:
        return value
    return evaluate_expression(body, data)


def due_at(value: str | None, data: dict[str, Any], now: datetime) -> datetime | None:
    """`camunda:dueDate`: an ISO 8601 duration from now, an ISO datetime, or an expression."""
    resolved = resolve(value, data)
    if resolved in (None, ""):
        return None
    if isinstance(resolved, datetime):
        return resolved if resolved.tzinfo else resolved.replace(tzinfo=now.tzinfo)
    return due_from(str(resolved), now)


def _names(value: Any) -> list[str]:
    if isinstance(value, list | tuple | set):
        names = [str(v) for v in value]
    else:
        names = split_list(str(value)) if value else []
    return list(dict.fromkeys(names))


def _assignment(ex: Execution, element_id: str, info: dict[str, Any], data: dict[str, Any]):
    """Assignee and candidates, each literal or `${expr}` evaluated in the sandbox.

    An expression that fails (a missing variable, a typo) must not offer the task to anyone
    with an approver role, so it goes to administrators and the history says why.
    """
    try:
        assignee = resolve(info.get("assignee"), data)
        groups = _names(resolve(info.get("candidate_groups"), data))
        users = _names(resolve(info.get("candidate_users"), data))
    except Exception as exc:
        ex.record("task_assignment_failed", element_id, error=f"{type(exc).__name__}: {exc}")
        return None, ["admin"], []
    return (str(assignee) if assignee not in (None, "") else None), groups, users


def new_human_task(ex: Execution, task: Any) -> HumanTask:
    element_id = task.task_spec.bpmn_id
    info = ex.elements.get(element_id, {})
    data = task.data
    assignee, groups, users = _assignment(ex, element_id, info, data)
    properties = info.get("properties", {})
    try:
        due = due_at(info.get("due_date"), data, ex.now)
    except Exception as exc:
        # As for an assignment: a due date that cannot be worked out (a bad or century-long
        # duration from a variable) leaves the task without one, and the history says why.
        ex.record("task_due_date_failed", element_id, error=f"{type(exc).__name__}: {exc}")
        due = None
    sla = sla_business_days(properties, ex.now, due)
    return HumanTask(
        id=str(task.id),
        instance_id=ex.instance.id,
        element_id=element_id,
        name=task.task_spec.bpmn_name or element_id,
        process_key=ex.instance.process_key,
        business_key=ex.instance.business_key,
        status="open",
        state="created",
        assignee=assignee,
        candidate_groups=groups,
        candidate_users=users,
        due_at=due,
        form=info.get("form", []),
        properties=properties,
        created_at=ex.now,
        sla_business_days=sla,
        escalation_level=0,
        escalation_check_at=first_check_at(ex.now, sla),
    )


# What each command reads back of an instance's projections, built once (see commands.py).
_OPEN_TASKS = select(HumanTask).where(
    HumanTask.instance_id == bindparam("instance_id"), HumanTask.status == "open"
)
_TIMERS = select(Timer).where(Timer.instance_id == bindparam("instance_id"))
_SUBSCRIPTIONS = select(MessageSubscription).where(
    MessageSubscription.instance_id == bindparam("instance_id")
)
# On the tables, not the mapped classes: no ORM bulk-delete set-up, and no flush before them.
_DROP_TIMERS = delete(Timer.__table__).where(Timer.__table__.c.instance_id == bindparam("iid"))
_DROP_SUBSCRIPTIONS = delete(MessageSubscription.__table__).where(
    MessageSubscription.__table__.c.instance_id == bindparam("iid")
)


def stored_kinds(workflow: Any) -> frozenset[str]:
    """The projections an instance saved in this state has rows of.

    Rows are written only from the saved state, in the same transaction, so a kind the state
    holds nothing of has no rows, and the command need not read its table (on PostgreSQL, a
    round trip each).
    """
    kinds = set()
    if _ready_user_tasks(workflow):
        kinds.add("tasks")
    for task in _waiting_events(workflow):
        for _, definition in _catches(task):
            if isinstance(definition, TimerEventDefinition):
                kinds.add("timers")
            elif isinstance(definition, MessageEventDefinition):
                kinds.add("subscriptions")
    if event_subprocess_starts(workflow):
        kinds.add("subscriptions")
    return frozenset(kinds)


def _stored(ex: Execution, statement: Any, kind: str) -> list[Any]:
    """An instance's projection rows as this command has left them so far.

    Read without flushing first, so that a command's changes go out in one flush at its end
    (each flush costs a unit-of-work set-up and an audit pass). Rows it deleted are left out;
    new projection rows are only ever added after this read, by the sync functions below.
    """
    if ex.stored_kinds is not None and kind not in ex.stored_kinds:
        return []
    session = ex.uow.session
    with session.no_autoflush:
        rows = session.execute(statement, {"instance_id": ex.instance.id}).scalars().all()
    deleted = session.deleted
    return [row for row in rows if row not in deleted]


def _sync_tasks(ex: Execution) -> list[HumanTask]:
    session = ex.uow.session
    ready = {str(t.id): t for t in _ready_user_tasks(ex.workflow)}
    # A task this command closed is still open in the table until the flush.
    stored = {row.id: row for row in _stored(ex, _OPEN_TASKS, "tasks") if row.status == "open"}
    open_rows = [row for task_id, row in stored.items() if task_id in ready]
    for task_id, row in stored.items():
        if task_id in ready:
            continue
        # Gone without a completion by this command: a boundary event or cancel removed it.
        inbox.close(
            session, row, "completed" if task_id in ex.completed_task_ids else "cancelled", ex.now
        )
        if row.status == "cancelled":
            ex.record("task_cancelled", row.element_id, task_id=task_id)
    created = []
    for task_id, task in ready.items():
        if task_id in stored:
            continue
        row = new_human_task(ex, task)
        ex.record("task_created", row.element_id, task_id=row.id, assignee=row.assignee)
        ex.outbox.append(inbox.task_event(row, "task.created", ex.now))
        created.append(row)
    # Plain INSERTs, tasks before the candidate rows that refer to them (engine/store/inserts).
    insert_loaded(session, created)
    insert_loaded(
        session,
        [
            inbox.candidate(row, kind, name)
            for row in created
            for kind, names in (("group", row.candidate_groups), ("user", row.candidate_users))
            for name in names
        ],
    )
    return open_rows + created


def _ready_user_tasks(workflow: Any) -> list[Any]:
    return [
        t
        for t in workflow.get_tasks(state=TaskState.READY)
        if t.task_spec.manual and t.task_spec.bpmn_id
    ]


def _waiting_events(workflow: Any) -> list[Any]:
    return [t for t in workflow.event_manager.tasks.values() if t.state == TaskState.WAITING]


def _timer_due(task: Any, definition: Any) -> datetime | None:
    value = task.internal_data.get("event_value")
    if isinstance(definition, CycleTimerEventDefinition):
        value = value.get("next") if isinstance(value, dict) else None
    if not value:
        return None
    return TimerEventDefinition.get_datetime(value)


def _catches(task: Any) -> list[tuple[str, Any]]:
    """(element id, event definition) of what a waiting task listens for.

    An event-based gateway waits as one task: SpiffWorkflow moves the events of the catch
    events after it onto the gateway (a MultipleEventDefinition, in the order of its outgoing
    flows), so each is listed under its own catch event's id.
    """
    spec = task.task_spec
    definition = spec.event_definition
    if isinstance(definition, MultipleEventDefinition) and len(spec.outputs) == len(
        definition.event_definitions
    ):
        return [
            (output.bpmn_id or output.name, event)
            for output, event in zip(spec.outputs, definition.event_definitions, strict=True)
        ]
    return [(spec.bpmn_id or spec.name, definition)]


def _sync_timers(ex: Execution, waiting: list[Any]) -> list[Timer]:
    session = ex.uow.session
    wanted: dict[str, tuple[str, datetime]] = {}
    for task in waiting:
        for element_id, definition in _catches(task):
            if isinstance(definition, TimerEventDefinition):
                due = _timer_due(task, definition)
                if due is not None:
                    wanted[str(task.id)] = (element_id, due)
    stored = {row.task_id: row for row in _stored(ex, _TIMERS, "timers")}
    kept = []
    for task_id, row in stored.items():
        if task_id not in wanted:
            session.delete(row)
            continue
        if abs(row.due_at - wanted[task_id][1]) > timedelta(milliseconds=1):
            row.due_at = wanted[task_id][1]
        kept.append(row)
    for task_id, (element_id, due) in wanted.items():
        if task_id not in stored:
            row = Timer(
                instance_id=ex.instance.id, task_id=task_id, element_id=element_id, due_at=due
            )
            session.add(row)
            kept.append(row)
    return kept


def _correlation_key(ex: Execution, element_id: str, data: dict[str, Any]) -> str | None:
    """The business key, unless the catching event names another (`correlation_key` property)."""
    expression = ex.elements.get(element_id, {}).get("properties", {}).get("correlation_key")
    if expression:
        value = evaluate_expression(expression_body(expression) or expression, data)
        return None if value is None else str(value)
    return ex.instance.business_key


# The task_id of a subscription for an event subprocess start, which has no task of its own.
EVENT_SUBPROCESS_PREFIX = "event-subprocess:"


def event_subprocess_starts(workflow: Any) -> list[tuple[str, str]]:
    """(start event id, message name) of the process's message-started event subprocesses.

    SpiffWorkflow keeps these as triggers of the process start, not as waiting tasks, so the
    subscriptions must be read from the spec.
    """
    starts = []
    for name in workflow.spec.start.trigger_specs:
        spec = workflow.subprocess_specs.get(name)
        for start in spec.bpmn_start_events if spec is not None else []:
            if isinstance(start.event_definition, MessageEventDefinition):
                starts.append((start.bpmn_id, start.event_definition.name))
    return starts


_NOT_YET = object()


def _start_key(ex: Execution, element_id: str) -> Any:
    """The key an event subprocess start listens under; `_NOT_YET` while its variable does not
    exist (a P2P instance has no `po_no` before its requisition is read, nor when reading it
    failed): it starts listening once it does, at a later command."""
    last = ex.workflow.last_task
    try:
        return _correlation_key(ex, element_id, last.data if last is not None else {})
    except NameError:
        return _NOT_YET


def _sync_subscriptions(
    ex: Execution, waiting: list[Any]
) -> tuple[list[MessageSubscription], list[MessageSubscription]]:
    session = ex.uow.session
    wanted: dict[str, tuple[str, str, str | None]] = {}
    for task in waiting:
        catches = _catches(task)
        for element_id, definition in catches:
            if isinstance(definition, MessageEventDefinition):
                # One row per message; behind an event-based gateway each needs its own id.
                key = str(task.id) if len(catches) == 1 else str(uuid5(task.id, element_id))
                wanted[key] = (
                    element_id,
                    definition.name,
                    _correlation_key(ex, element_id, task.data),
                )
    for element_id, name in event_subprocess_starts(ex.workflow):
        # Listening for as long as the instance runs; the id is stable across commands.
        key = _start_key(ex, element_id)
        if key is not _NOT_YET:
            wanted[f"{EVENT_SUBPROCESS_PREFIX}{element_id}"] = (element_id, name, key)
    stored = {row.task_id: row for row in _stored(ex, _SUBSCRIPTIONS, "subscriptions")}
    kept = []
    for task_id, row in stored.items():
        if task_id in wanted:
            kept.append(row)
        else:
            session.delete(row)
    added = []
    for task_id, (element_id, name, key) in wanted.items():
        if task_id not in stored:
            row = MessageSubscription(
                instance_id=ex.instance.id,
                task_id=task_id,
                element_id=element_id,
                message_name=name,
                correlation_key=key,
            )
            session.add(row)
            added.append(row)
    return kept + added, added


def sync_projections(ex: Execution) -> list[MessageSubscription]:
    """Bring tasks, timers and subscriptions in line with the workflow; return new subscriptions.

    `ex.projected` keeps what the tables now hold for this instance, for the command's answer.
    """
    tasks = _sync_tasks(ex)
    waiting = _waiting_events(ex.workflow)
    timers = _sync_timers(ex, waiting)
    subscriptions, added = _sync_subscriptions(ex, waiting)
    ex.projected = {"tasks": tasks, "timers": timers, "subscriptions": subscriptions}
    return added


def clear_projections(ex: Execution) -> None:
    """An ended or cancelled instance waits for nothing: its open tasks close, and its timers
    and subscriptions go without being read first."""
    _sync_tasks(ex)
    ex.projected = {"tasks": [], "timers": [], "subscriptions": []}
    if ex.stored_kinds == frozenset():
        return  # nothing stored (a new instance): nothing to drop
    session = ex.uow.session
    queued = session.dirty | session.deleted
    if any(isinstance(row, (Timer, MessageSubscription)) for row in queued):
        session.flush()  # a change queued for a row deleted below would find it gone
    connection = session.connection()
    for kind, statement in (("timers", _DROP_TIMERS), ("subscriptions", _DROP_SUBSCRIPTIONS)):
        if ex.stored_kinds is None or kind in ex.stored_kinds:
            connection.execute(statement, {"iid": ex.instance.id})
