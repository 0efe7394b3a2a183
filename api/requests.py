"""Request parsing shared by the blueprints: JSON bodies, pages, the calling actor."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from flask import current_app, g, request

from api.errors import BadRequest
from engine.errors import ValidationFailed
from engine.runtime.commands import Actor, Runtime

MAX_PAGE_SIZE = 200


def runtime() -> Runtime:
    return current_app.extensions["flowgate"].runtime


def actor() -> Actor:
    return g.actor


def json_body(required: bool = True) -> dict[str, Any]:
    """The request body as a JSON object, or a 400 that says what is wrong with it."""
    if not request.data:
        if required:
            raise BadRequest("a JSON object body is required")
        return {}
    try:
        body = request.get_json(force=True, silent=False)
    except Exception:
        raise BadRequest("the body is not valid JSON") from None
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object")
    bad = unstorable(body, "")
    if bad is not None:
        where, why = bad
        raise BadRequest(f"{where} {why}", [{"field": where, "message": why}])
    return body


def unstorable_text(value: str) -> str | None:
    """Why text could not be stored: JSON and URLs allow an unpaired surrogate (`\\ud800`),
    which no UTF-8 column takes, and NUL, which PostgreSQL text refuses."""
    if "\x00" in value:
        return "contains a NUL character"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "contains an unpaired surrogate"
    return None


def unstorable(value: Any, where: str) -> tuple[str, str] | None:
    """The first field (`lines[0].lot`) of a parsed JSON body no column could store, and why.

    Python's JSON parser also reads NaN, Infinity and numbers past a float's range (1e400),
    which are not JSON: PostgreSQL's json columns refuse them and SQLite kept them, to be
    served back as a body no strict client can parse.
    """
    if isinstance(value, str):
        why = unstorable_text(value)
        return None if why is None else (where, why)
    if isinstance(value, float):
        return None if math.isfinite(value) else (where, "must be a finite number")
    if isinstance(value, dict):
        for key, item in value.items():
            why = unstorable_text(key)
            if why is not None:
                return where or "body", f"has a key that {why}"
            bad = unstorable(item, f"{where}.{key}" if where else key)
            if bad is not None:
                return bad
    elif isinstance(value, list):
        for index, item in enumerate(value):
            bad = unstorable(item, f"{where}[{index}]")
            if bad is not None:
                return bad
    return None


def utc_instant(text: str, naive_is_utc: bool = False) -> datetime | None:
    """An ISO datetime in UTC, or None: not one, without a zone (unless `naive_is_utc`), or
    off the calendar once converted (`0001-01-01T00:00+14:00` has no UTC instant)."""
    try:
        value = datetime.fromisoformat(text)
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC) if naive_is_utc else None
        return value.astimezone(UTC)
    except (ValueError, OverflowError):
        return None


def day_or_instant(text: str, end: bool, naive_is_utc: bool = False) -> datetime | None:
    """A date (YYYY-MM-DD, a whole day: see `_day_bound`) or a `utc_instant`; None for neither."""
    if len(text) == 10:
        try:
            return _day_bound(date.fromisoformat(text), end)
        except ValueError:
            return None
    return utc_instant(text, naive_is_utc)


def _day_bound(day: date, end: bool) -> datetime:
    """Where a whole-day range starts (`day`'s first instant, UTC) or ends (the next day's
    first, so that `end` includes it; 9999-12-31 has no next day, so its last instant)."""
    if end and day == date.max:
        return datetime.combine(day, time.max, UTC)
    return datetime.combine(day + timedelta(days=1 if end else 0), time.min, UTC)


def field(
    body: dict[str, Any],
    name: str,
    kind: type | tuple[type, ...],
    required: bool = True,
    default: Any = None,
) -> Any:
    value = body.get(name, default)
    if value is None:
        if required:
            raise BadRequest(f"'{name}' is required", [{"field": name, "message": "is required"}])
        return default
    if not isinstance(value, kind) or (
        kind is not bool and isinstance(value, bool) and kind is int
    ):
        names = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise BadRequest(
            f"'{name}' must be {names}", [{"field": name, "message": f"must be {names}"}]
        )
    if isinstance(value, int) and not isinstance(value, bool):
        _in_range(name, value)
    return value


def refused(name: str, message: str) -> ValidationFailed:
    """A 422 naming one field: the JSON has the right shape, the value is not acceptable."""
    return ValidationFailed(f"'{name}' {message}", [{"field": name, "message": message}])


def text_field(body: dict[str, Any], name: str, most: int, required: bool = True) -> str | None:
    """A string of at most `most` characters (the column's width: PostgreSQL refuses longer
    text, which was a 500), and when required not blank either."""
    value = field(body, name, str, required=required)
    if value is None:
        return None
    if required and not value.strip():
        raise refused(name, "must not be blank")
    if len(value) > most:
        raise refused(name, f"must be at most {most} characters")
    if has_control_character(value, allow="\t\n\r"):
        raise refused(name, "must not contain control characters")
    return value


def has_control_character(value: str, allow: str = "") -> bool:
    """Whether `value` holds a C0 control character or DEL outside `allow`: invisible in
    every listing and export, and in an identifier never what anyone meant to type."""
    return any((ord(c) < 32 or c == "\x7f") and c not in allow for c in value)


# Integers go into 64-bit database columns and OFFSETs; a larger one must be a 400 naming the
# field, not a driver OverflowError (a 500).
MAX_INT = 2**31 - 1


def _in_range(name: str, value: int) -> int:
    if not -MAX_INT <= value <= MAX_INT:
        message = f"must be between {-MAX_INT} and {MAX_INT}"
        raise BadRequest(f"'{name}' {message}", [{"field": name, "message": message}])
    return value


def int_arg(name: str) -> int | None:
    """An optional integer query parameter, or a 400 naming it."""
    raw = request.args.get(name)
    if raw is None:
        return None
    try:
        value = int(raw)
    except ValueError:
        raise BadRequest(
            f"'{name}' must be an integer", [{"field": name, "message": "must be an integer"}]
        ) from None
    return _in_range(name, value)


def page_args() -> tuple[int, int]:
    """`page` and `page_size`; a bad one is a 400 naming it, as every other field is."""
    page = _page_arg("page", "1", MAX_INT // MAX_PAGE_SIZE)
    return page, _page_arg("page_size", "50", MAX_PAGE_SIZE)


def _page_arg(name: str, default: str, most: int) -> int:
    message = f"must be an integer from 1 to {most}"
    try:
        value = int(request.args.get(name, default))
    except ValueError:
        value = 0
    if not 1 <= value <= most:
        raise BadRequest(f"'{name}' {message}", [{"field": name, "message": message}])
    return value
