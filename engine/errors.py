"""Domain errors raised by the engine; `api/errors.py` maps each to problem+json once."""

from __future__ import annotations

from typing import Any

# Handlers in `domain/` raise it without importing the engine; re-exported here for the runtime.
from domain.errors import BusinessError as BusinessError
from domain.errors import InvalidInput as InvalidInput


class FlowgateError(Exception):
    """Base class: a user-visible error with a stable title."""

    title = "Request failed"
    status = 400

    def __init__(self, detail: str, errors: list[dict[str, Any]] | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []


class NotFound(FlowgateError):
    title = "Not found"
    status = 404


class Conflict(FlowgateError):
    title = "Conflict"
    status = 409


class Forbidden(FlowgateError):
    title = "Forbidden"
    status = 403


class InvalidDefinition(FlowgateError):
    """A BPMN/DMN upload that cannot be deployed; `errors` name the elements."""

    title = "Invalid process definition"
    status = 422


class ValidationFailed(FlowgateError):
    """Input that breaks a form or a payload schema; `errors` name the fields."""

    title = "Validation failed"
    status = 422


class ConcurrentUpdate(Conflict):
    """The instance changed under us (optimistic version check); the caller may retry."""
