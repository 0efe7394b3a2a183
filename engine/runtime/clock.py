"""Make SpiffWorkflow's timers read the runtime's clock instead of the wall clock.

SpiffWorkflow computes a timer's due time and decides whether it has fired with
`datetime.now(timezone.utc)` inside its timer module. The runtime has its own clock (injected
in tests and for what-if runs), and a timer row that the scheduler found due by that clock must
also be due for SpiffWorkflow, or the escalation and dunning timers could never be tested
without waiting for real. While a command runs (`executing(ex)`), `now()` in that module answers
the command's time; outside a command it is the wall clock, as before.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

from SpiffWorkflow.bpmn.specs.event_definitions import timer as spiff_timer

from engine.runtime.context import current_execution_or_none


class RuntimeDatetime(datetime):
    @classmethod
    def now(cls, tz: tzinfo | None = None) -> datetime:  # type: ignore[override]
        execution = current_execution_or_none()
        if execution is None:
            return super().now(tz)
        moment = execution.now
        return moment.astimezone(tz) if tz is not None else moment.replace(tzinfo=None)


def install() -> None:
    spiff_timer.datetime = RuntimeDatetime  # type: ignore[misc]


install()
