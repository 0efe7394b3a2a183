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
