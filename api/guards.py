"""Request guards: JSON nesting depth, text no column takes, and per-key rate limits (issue 7,
hostile input)."""

from __future__ import annotations

import threading
import time

from flask import Flask, Response, g, request

from api.errors import BadRequest, problem
from api.permissions import PERMISSIONS
from api.requests import has_control_character, unstorable_text

# Headers whose value the engine stores (an idempotency record's key).
STORED_HEADERS = ("Idempotency-Key",)


def unstorable_parameter() -> tuple[str, str] | None:
    """The first path parameter, query parameter or stored header no column could take.

    `%00` in a URL reached the database as it was: PostgreSQL refused it with a 500, and
    SQLite stored a customer whose id has a NUL in it.
    """
    for name, value in (request.view_args or {}).items():
        # Path parameters are identifiers (a customer, a lot): no control character belongs.
        if isinstance(value, str) and has_control_character(value):
            return name, "contains a control character"
    named = list(request.args.items(multi=True))
    named += [(name, request.headers[name]) for name in STORED_HEADERS if name in request.headers]
    for name, value in named:
        why = unstorable_text(name) or unstorable_text(value)
        if why is not None:
            return name, why
    return None


def json_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when arrays/objects nest deeper than `limit`, scanning without parsing.

    The stdlib parser recurses, and so do the engine's converters after it; a scan that only
    counts brackets outside strings refuses a nesting bomb before either sees it.
    """
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # too few brackets to nest that deep: skip the byte-by-byte scan
    depth, in_string, escaped = 0, False, False
    for byte in body:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:  # backslash
                escaped = True
            elif byte == 0x22:  # quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            if depth > limit:
                return True
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return False


class RateLimiter:
    """A token bucket per key: `per_minute` calls, refilled evenly, bursts up to the same.

    The buckets live in this process; with N workers a key gets at most N times the rate.
    """

    def __init__(self, per_minute: int, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.capacity = float(per_minute)
        self.rate = per_minute / 60.0
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def take(self, key: str) -> float:
        """0 when the call may proceed, else the seconds to wait before the next one."""
        now = self._clock()
        with self._lock:
            tokens, stamp = self._buckets.get(key, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - stamp) * self.rate)
            if tokens >= 1:
                self._buckets[key] = (tokens - 1, now)
                return 0.0
            self._buckets[key] = (tokens, now)
            return (1 - tokens) / self.rate


def rate_limited(endpoint: str | None) -> bool:
    """ERP hooks (every endpoint the erp_system role may call) and token endpoints."""
    rule = PERMISSIONS.get(endpoint or "")
    is_hook = isinstance(rule, frozenset) and "erp_system" in rule
    return is_hook or "token" in (endpoint or "").split(".")[-1]


def install_guards(app: Flask, max_json_depth: int, per_minute: int) -> None:
    """Register after authentication: limits are per authenticated key or user."""
    limiter = RateLimiter(per_minute) if per_minute > 0 else None
    app.extensions["flowgate_rate_limiter"] = limiter

    @app.before_request
    def _guard() -> Response | None:
        who = g.get("actor")
        if limiter is not None and who is not None and rate_limited(request.endpoint):
            wait = limiter.take(who.user)
            if wait:
                return problem(
                    429,
                    "Too many requests",
                    f"rate limit of {per_minute} calls per minute for {who.user} exceeded",
                    headers={"Retry-After": str(max(1, round(wait + 0.5)))},
                )
        bad = unstorable_parameter()
        if bad is not None:
            name, why = bad
            raise BadRequest(f"{name} {why}", [{"field": name, "message": why}])
        # json_body() parses any body as JSON whatever its declared type, so check them all.
        if (
            request.content_length
            and not request.mimetype.startswith("multipart/")
            and json_depth_exceeds(request.get_data(cache=True), max_json_depth)
        ):
            raise BadRequest(
                f"JSON nested deeper than {max_json_depth} levels",
                [{"field": "body", "message": f"nesting exceeds {max_json_depth} levels"}],
            )
        return None
