"""The command being executed, visible to task specs while SpiffWorkflow runs them.

SpiffWorkflow calls task specs without a way to pass our unit of work or registries, so the
runtime publishes them here for the duration of one command (a context variable keeps
threads and requests apart).
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from engine.runtime.execution import Execution

_current: contextvars.ContextVar[Execution | None] = contextvars.ContextVar(
    "flowgate_execution", default=None
)


def current_execution() -> Execution:
    execution = _current.get()
    if execution is None:
        raise RuntimeError("a flowgate task ran outside an engine command")
    return execution


def current_execution_or_none() -> Execution | None:
    return _current.get()


@contextmanager
def executing(execution: Execution) -> Iterator[Execution]:
    token = _current.set(execution)
    try:
        yield execution
    finally:
        _current.reset(token)
