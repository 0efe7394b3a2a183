"""ISO 8601 durations, bounded before SpiffWorkflow turns them into dates.

SpiffWorkflow adds a duration's months one calendar month at a time, so `P99999999Y` in a
model or a process variable was 1.2 billion loop turns inside a command, holding SQLite's only
write lock (every other command and the scheduler waited behind it). Every duration it parses,
for timer events and for `camunda:dueDate`, goes through `parse_duration` instead, which refuses
anything longer than a century.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from SpiffWorkflow.bpmn.specs.event_definitions.timer import TimerEventDefinition

MAX_YEARS = 100
# Per unit, the most a duration within MAX_YEARS can hold.
_LIMITS = {
    "years": MAX_YEARS,
    "months": MAX_YEARS * 12,
    "weeks": MAX_YEARS * 53,
    "days": MAX_YEARS * 366,
    "hours": MAX_YEARS * 366 * 24,
    "minutes": MAX_YEARS * 366 * 24 * 60,
    "seconds": MAX_YEARS * 366 * 24 * 3600,
}
_spiff_parse = TimerEventDefinition.parse_iso_duration


def parse_duration(expression: str) -> dict[str, Any]:
    """SpiffWorkflow's parse of `expression`, or ValueError when it is longer than a century."""
    parsed = _spiff_parse(expression)
    months = parsed.get("years", 0) * 12 + parsed.get("months", 0)
    if months > _LIMITS["months"] or any(parsed.get(k, 0) > v for k, v in _LIMITS.items()):
        raise ValueError(f"duration {expression!r} is longer than {MAX_YEARS} years")
    return parsed


def due_from(text: str, now: datetime) -> datetime:
    """A due date given as text: an ISO 8601 duration from `now`, or an ISO datetime."""
    if text.upper().startswith("P"):
        return now + TimerEventDefinition.get_timedelta_from_start(parse_duration(text), now)
    return TimerEventDefinition.get_datetime(text)


def timer_problem(text: Any, cycle: bool) -> str | None:
    """Why `text` cannot drive a timer event, or None: a cycle (`R3/PT1H`) or a duration
    (`P1D`), each at most a century, and a cycle that waits between its rounds.

    For a value from outside the model (a start variable overriding a cadence), checked before
    the instance reaches the timer, so that the sender hears of it instead of an incident.
    """
    if not isinstance(text, str) or not text.strip():
        return "must be an ISO 8601 cycle such as R3/P1D" if cycle else "must be a duration"
    try:
        if cycle:
            _rounds, _start, every = TimerEventDefinition.parse_iso_recurring_interval(text)
        else:
            every = TimerEventDefinition.get_timedelta_from_start(parse_duration(text))
    except Exception:  # SpiffWorkflow raises bare Exception, ValueError and AttributeError
        example = "R3/P1D" if cycle else "P1D"
        return f"is not an ISO 8601 {'cycle' if cycle else 'duration'} such as {example}"
    if every.total_seconds() <= 0:
        # A zero wait would fire on every scheduler tick, for as long as the loop lasts.
        return "must wait some time between its rounds" if cycle else "must be longer than zero"
    return None


# SpiffWorkflow calls the parser through the class, so this covers its timer events too.
TimerEventDefinition.parse_iso_duration = staticmethod(parse_duration)
