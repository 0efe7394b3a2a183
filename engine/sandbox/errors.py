"""The one exception the sandbox raises."""

from __future__ import annotations


class SandboxViolation(Exception):
    """A script or expression broke the sandbox policy or ran past a limit.

    `args[0]` is always the full human-readable message: SpiffWorkflow builds its
    WorkflowTaskException detail from `err.args[0]`, and the incident shows it.
    """

    def __init__(self, message: str, messages: list[str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.messages = messages or [message]
