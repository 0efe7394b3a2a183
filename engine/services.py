"""Service-task registry: topic name -> handler (DESIGN §2).

A handler gets a `ServiceCall`, may read and change the task's variables, write domain rows
through `call.session`, queue outside calls with `call.emit`, and returns variables to merge.
It raises `BusinessError(code)` to take a BPMN error boundary event; anything else is an
incident. Handlers run inside the command's transaction, so they must never call the outside.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from engine.events import PUBLISH_TOPIC, published_event

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from engine.runtime.execution import Execution


@dataclass
class ServiceCall:
    topic: str
    element_id: str
    task_id: str
    instance_id: str
    business_key: str | None
    variables: dict[str, Any]
    properties: dict[str, str]
    now: datetime
    execution: Execution = field(repr=False)

    @property
    def session(self) -> Session:
        return self.execution.uow.session

    def emit(self, event_type: str, payload: dict[str, Any]) -> None:
        """Queue an outbox message, keyed stably by instance, element and task."""
        self.execution.emit(event_type, payload, key=f"{self.task_id}:{event_type}")


Handler = Callable[[ServiceCall], dict[str, Any] | None]


class ServiceRegistry:
    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}

    def register(self, topic: str, handler: Handler) -> None:
        if topic in self._handlers:
            raise ValueError(f"service topic '{topic}' is already registered")
        self._handlers[topic] = handler

    def handler(self, topic: str) -> Handler:
        try:
            return self._handlers[topic]
        except KeyError:
            raise LookupError(f"no handler registered for service topic '{topic}'") from None

    def __contains__(self, topic: object) -> bool:
        return topic in self._handlers

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._handlers))


def publish_event(call: ServiceCall) -> dict[str, Any] | None:
    """Built-in `outbox.publish`: send the element's `event` property to the outbox.

    The payload is the variable named by the `payload` property (default: all variables), so
    an analyst can notify the ERP without code.
    """
    event_type = published_event(call.element_id, call.properties)
    source = call.properties.get("payload")
    payload = call.variables.get(source) if source else call.variables
    call.emit(event_type, {"business_key": call.business_key, "data": payload})
    return None


def default_registry() -> ServiceRegistry:
    registry = ServiceRegistry()
    registry.register(PUBLISH_TOPIC, publish_event)
    return registry
