"""Errors raised by domain services and service-task handlers."""

from __future__ import annotations


class BusinessError(Exception):
    """Raised by a service handler to take a BPMN error boundary event with this code."""

    def __init__(self, code: str, message: str = "") -> None:
        super().__init__(message or code)
        self.code = code
        self.message = message or code


class UnbalancedEntry(ValueError):
    """A journal entry whose debits and credits differ; it is never written."""


class InvalidInput(ValueError):
    """Data from outside (a message payload, a start variable) that no retry can make usable.

    `field` names it as the sender wrote it, prefixed with the message or variable name
    (`goods_received.lines[0].gtin`): the runtime refuses the message that carried it instead
    of leaving the instance in an incident that `retry` would only repeat.
    """

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
