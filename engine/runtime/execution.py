"""One command's view of one instance while SpiffWorkflow runs it.

It carries the unit of work, the loaded workflow and what the command will write besides the
state blob: history events, outbox rows and decision records.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from copy import deepcopy
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from SpiffWorkflow.bpmn import BpmnEvent, BpmnWorkflow
from SpiffWorkflow.bpmn.specs.event_definitions.item_aware_event import ErrorEventDefinition
from SpiffWorkflow.util.task import TaskState

from engine.definitions.catalog import LoadedDefinition
from engine.definitions.task_specs import ExternalServiceTask, RulesetTask
from engine.errors import BusinessError, InvalidInput, ValidationFailed
from engine.runtime import clock  # noqa: F401 - SpiffWorkflow timers follow the runtime clock
from engine.runtime.context import executing
from engine.runtime.state import to_json_safe
from engine.services import ServiceCall, ServiceRegistry
from engine.store.audit import ENGINE_STEP
from engine.store.outbox import outbox_row
from engine.store.tables import Instance
from engine.store.uow import UnitOfWork


class DecisionMaker(Protocol):
    """The rules hook for business rule tasks that name a ruleset (see rules issue)."""

    def decide(self, execution: Execution, ruleset_key: str, task: Any) -> None: ...


class NoRules:
    def decide(self, execution: Execution, ruleset_key: str, task: Any) -> None:
        raise LookupError(f"no rules engine is wired to evaluate '{ruleset_key}'")


class _BusinessErrorRouted(Exception):
    """A BusinessError was caught by a boundary event; the failed task stays in ERROR."""


class StepFailed(BaseException):
    """A step failed while the command ran without savepoints: run the command again with them.

    A BaseException so that no `except Exception` between the engine and the command swallows
    it; the command's unit of work rolls back on the way out (`_replaying` in commands).
    """


# Set while a command is re-run after a StepFailed: each step then gets its savepoint.
GUARDED_STEPS: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "flowgate_guarded_steps", default=False
)


@contextmanager
def guarded_steps() -> Iterator[None]:
    """Give every step run inside a savepoint of its own (see Execution.run_steps)."""
    token = GUARDED_STEPS.set(True)
    try:
        yield
    finally:
        GUARDED_STEPS.reset(token)


@dataclass
class Incident:
    element_id: str | None
    error: str

    def as_dict(self, at: datetime) -> dict[str, Any]:
        return {"element_id": self.element_id, "error": self.error, "at": at.isoformat()}


@dataclass
class Execution:
    uow: UnitOfWork
    instance: Instance
    definition: LoadedDefinition
    workflow: BpmnWorkflow
    services: ServiceRegistry
    rules: DecisionMaker
    actor: str | None
    now: datetime
    # History rows (engine/store/history.py), written when the command saves the instance.
    events: list[dict[str, Any]] = field(default_factory=list)
    # Outbox rows queued by this command's steps, written with the history when it saves.
    outbox: list[dict[str, Any]] = field(default_factory=list)
    completed_task_ids: set[str] = field(default_factory=set)
    # The projections the instance has rows of (projection.stored_kinds; none for a new one),
    # so the queries that would find none are skipped. None: unknown, read them all (once the
    # command has saved, its own rows may differ).
    stored_kinds: frozenset[str] | None = None
    # Set by `cancel`: the next save writes the instance as cancelled.
    cancelled: bool = False
    # What the projections hold after the last sync, so the answer needs no second query.
    projected: dict[str, list[Any]] | None = None
    # While a message is delivered or an instance started: what is being done, and the names
    # the sender's data has in the process (the message; "" for any name, at a start) with the
    # field each is under in the request (`payload`, `variables`). A handler that finds that
    # data unusable (InvalidInput naming a field under one of them) refuses the request instead
    # of leaving an incident, because `retry` would only read the same data again.
    refusing: tuple[str, dict[str, str]] | None = None

    @contextmanager
    def refusing_bad(self, what: str, names: dict[str, str]) -> Iterator[None]:
        """Within: unusable data under `names` refuses `what` (see `refusing`)."""
        self.refusing = (what, names)
        try:
            yield
        finally:
            self.refusing = None

    @property
    def elements(self) -> dict[str, dict[str, Any]]:
        return self.definition.elements

    def record(self, kind: str, element_id: str | None = None, **details: Any) -> None:
        self.events.append(
            {
                "instance_id": self.instance.id,
                "at": self.now,
                "type": kind,
                "element_id": element_id,
                "actor": self.actor,
                "details": to_json_safe(details),
            }
        )

    def emit(self, event_type: str, payload: dict[str, Any], key: str) -> None:
        """Queue a call to the outside; it is written with the instance (engine/store/outbox)."""
        key, safe = f"{self.instance.id}:{key}", to_json_safe(payload)
        self.outbox.append(outbox_row(key, event_type, self.instance.id, safe, self.now))
        self.record("outbox_queued", None, event_type=event_type)

    # Hooks called by the flowgate task specs -------------------------------------------

    def call_service(self, topic: str, task: Any) -> None:
        element_id = task.task_spec.bpmn_id
        call = ServiceCall(
            topic=topic,
            element_id=element_id,
            task_id=str(task.id),
            instance_id=self.instance.id,
            business_key=self.instance.business_key,
            variables=task.data,
            properties=self.elements.get(element_id, {}).get("properties", {}),
            now=self.now,
            execution=self,
        )
        try:
            result = self.services.handler(topic)(call)
        except BusinessError as exc:
            self._route_business_error(task, exc)
            raise _BusinessErrorRouted(exc.code) from exc
        if result:
            task.data.update(result)
        if GUARDED_STEPS.get():
            # A row the database refuses fails here, inside the step, as an incident naming
            # the element, rather than later when nothing can say which step queued it.
            self.uow.session.flush()

    def evaluate_ruleset(self, ruleset_key: str, task: Any) -> None:
        self.rules.decide(self, ruleset_key, task)

    def _route_business_error(self, task: Any, exc: BusinessError) -> None:
        event = BpmnEvent(
            ErrorEventDefinition(exc.code, code=exc.code),
            payload={"error_code": exc.code, "error_message": exc.message},
            target=task.workflow,
        )
        caught = self.workflow.event_manager.catch(event, internal=False)
        if not caught:
            # No boundary event for this code: a modelling gap, so stop here as an incident.
            raise RuntimeError(f"business error '{exc.code}' has no error boundary event") from exc
        self.record("business_error", task.task_spec.bpmn_id, code=exc.code, message=exc.message)

    # Running the engine ------------------------------------------------------------------

    def run_steps(self) -> Incident | None:
        """Run engine steps until every token waits; on failure, stop before the failing task.

        The failing task's data and state are put back as they were before it ran, and its
        database writes are undone by a savepoint, so the saved state is the last clean point
        and `retry` simply runs the steps again.

        A savepoint (two statements and two flushes) and a copy of the data for every service,
        rule and script task were a fifth of a straight-through order's time, while steps
        rarely fail. So a command first runs its steps without them; the first failure or
        routed business error raises StepFailed, the command rolls back whole, and runs again
        with them (GUARDED_STEPS). Handlers write only to this transaction, so the second run
        starts from the same place.
        """
        if not GUARDED_STEPS.get():
            return self._run_unguarded()
        current: dict[str, Any] = {}

        def will_complete(task: Any) -> None:
            current.clear()
            current["task"] = task
            if isinstance(task.task_spec, ExternalServiceTask | RulesetTask) or getattr(
                task.task_spec, "script", None
            ):
                current["data"] = deepcopy(task.data)
                current["internal"] = deepcopy(task.internal_data)
                current["savepoint"] = self.uow.session.begin_nested()
                # Queued rows are not in the savepoint yet: undoing the step drops its own,
                # and its history events (a `decision` event naming a row rolled back).
                current["outbox"] = len(self.outbox)
                current["events"] = len(self.events)

        def did_complete(task: Any) -> None:
            savepoint = current.get("savepoint")
            if savepoint is not None:
                savepoint.commit()
                # Only now: a commit that failed leaves the savepoint for _undo_savepoint.
                del current["savepoint"]
            self._record_step(task)
            current.clear()

        with executing(self):
            while True:
                try:
                    self.workflow.do_engine_steps(will_complete, did_complete)
                    return None
                except _BusinessErrorRouted:
                    # The step's writes and events go, but not the routing just recorded.
                    routed = self.events[-1]
                    self._undo_savepoint(current)
                    if routed not in self.events:
                        self.events.append(routed)
                    continue
                except Exception as exc:
                    refused = self._refusal(exc)
                    if refused is not None:
                        self._undo_savepoint(current)
                        raise refused from exc
                    return self._stop_before(current, exc)

    def _run_unguarded(self) -> None:
        with executing(self):
            try:
                self.workflow.do_engine_steps(None, self._record_step)
            except Exception as exc:
                refused = self._refusal(exc)
                if refused is not None:
                    raise refused from exc
                raise StepFailed(_describe(exc)) from exc

    def _refusal(self, exc: BaseException) -> ValidationFailed | None:
        """ValidationFailed, naming the request's field, when `exc` says the data the sender
        sent is unusable. Raised, it rolls the command back whole, so a message's instance
        keeps waiting and a start leaves no instance behind."""
        if self.refusing is None or isinstance(exc, _BusinessErrorRouted):
            return None  # a business error the model handles, whatever caused it
        bad = _invalid_input(exc)
        if bad is None:
            return None
        what, names = self.refusing
        for name, under in names.items():
            if not name:
                # Any field: at a start, what the sender sent is all the data there is, so even
                # a variable it left out (`order`) is its to fix.
                field = f"{under}.{bad.field}"
            elif bad.field == name or bad.field.startswith((f"{name}.", f"{name}[")):
                field = under + bad.field[len(name) :]
            else:
                continue
            return ValidationFailed(
                f"{what} was refused: {field} {bad.message}",
                [{"field": field, "message": bad.message}],
            )
        return None  # about something else (a model property, a record): an incident

    def _record_step(self, task: Any) -> None:
        if task.task_spec.bpmn_id is not None:
            self.record(ENGINE_STEP, task.task_spec.bpmn_id)

    def _undo_savepoint(self, current: dict[str, Any]) -> None:
        savepoint = current.pop("savepoint", None)
        if savepoint is not None:
            # Also when a failed flush already deactivated it: rolling back is what closes it
            # and hands the session back, or saving the incident meets PendingRollbackError.
            savepoint.rollback()
        if "outbox" in current:
            del self.outbox[current.pop("outbox") :]
        if "events" in current:
            del self.events[current.pop("events") :]

    def _stop_before(self, current: dict[str, Any], exc: Exception) -> Incident:
        self._undo_savepoint(current)
        task = current.get("task")
        if task is None:
            return Incident(None, _describe(exc))
        if "data" in current:
            task.data = current["data"]
            task.internal_data = current["internal"]
        task._set_state(TaskState.READY)
        element_id = task.task_spec.bpmn_id or task.task_spec.name
        self.record("incident", element_id, error=_describe(exc))
        return Incident(element_id, _describe(exc))


def _invalid_input(exc: BaseException) -> InvalidInput | None:
    """The InvalidInput behind `exc`, however SpiffWorkflow or a handler wrapped it."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, InvalidInput):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _describe(exc: BaseException) -> str:
    """The root cause, because SpiffWorkflow wraps script errors in its own exceptions."""
    message = str(exc)
    cause = exc.__cause__ or exc.__context__
    if cause is not None and str(cause) and str(cause) not in message:
        message = f"{message}: {cause}"
    return f"{type(exc).__name__}: {message}"[:2000]
