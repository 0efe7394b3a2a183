"""Structured JSON logs, one object per line, with tokens, keys and secrets redacted.

Redaction happens in the formatter, on the final text, so a secret cannot slip through an
exception message, a traceback or a third-party logger either.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, g, request

REDACTED = "[redacted]"
PATTERNS = [
    # API keys (api/auth.py KEY_PREFIX) and anything after "Bearer".
    (re.compile(r"fgk_[A-Za-z0-9_\-]+"), "fgk_" + REDACTED),
    (re.compile(r"(?i)(bearer\s+)[^\s\"',]+"), r"\1" + REDACTED),
    # Signed user tokens (itsdangerous: payload.timestamp.signature, base64url).
    (re.compile(r"\.?[A-Za-z0-9_\-]{16,}\.[A-Za-z0-9_\-]{4,10}\.[A-Za-z0-9_\-]{16,}"), REDACTED),
    # key=value or "key": "value" for names that hold secrets.
    (
        re.compile(
            r"(?i)(\"?\b(?:secret|secret_key|password|token|api_key|authorization)\b\"?\s*[:=]\s*)"
            r"(\"[^\"]*\"|[^\s,}]+)"
        ),
        r"\1" + '"' + REDACTED + '"',
    ),
]
REQUEST_ID = re.compile(r"^[A-Za-z0-9._\-]{1,64}$")
_known_secrets: set[str] = set()
# Attributes of a LogRecord that are plumbing, not content.
_RECORD_FIELDS = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def register_secret(value: str | None) -> None:
    """A literal value (the signing key, a webhook secret) that must never appear in a log."""
    if value and len(value) >= 8:
        _known_secrets.add(value)


def redact(text: str) -> str:
    for secret in _known_secrets:
        if secret in text:
            text = text.replace(secret, REDACTED)
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name, value in vars(record).items():
            if name not in _RECORD_FIELDS and not name.startswith("_"):
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return redact(json.dumps(entry, default=str, ensure_ascii=False))


class _FlowgateHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Marks the handler this module installed, so configuring twice does not log twice."""


def configure_logging(level: str = "INFO") -> None:
    root = logging.getLogger()
    if not any(isinstance(h, _FlowgateHandler) for h in root.handlers):
        handler = _FlowgateHandler(sys.stderr)
        handler.setFormatter(JsonFormatter())
        root.addHandler(handler)
    root.setLevel(level.upper())
    # Werkzeug's access line carries the raw query string; the request log below replaces it.
    logging.getLogger("werkzeug").setLevel(logging.WARNING)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    # SpiffWorkflow logs every task state change at INFO: far too much for a service log.
    logging.getLogger("spiff").setLevel(logging.WARNING)
    # APScheduler logs each tick's job run at INFO, i.e. every second.
    logging.getLogger("apscheduler").setLevel(logging.WARNING)


access_log = logging.getLogger("flowgate.access")


def install_request_logging(app: Flask) -> None:
    """One `request` line per request: id, method, path (no query), status, duration, actor."""

    @app.before_request
    def _start() -> None:
        given = request.headers.get("X-Request-Id", "")
        g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        g.request_started = time.perf_counter()

    @app.after_request
    def _finish(response: Response) -> Response:
        started = g.get("request_started")
        actor = g.get("actor")
        access_log.info(
            "request",
            extra={
                "request_id": g.get("request_id"),
                "method": request.method,
                "path": request.path,
                "status": response.status_code,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2)
                if started
                else None,
                "actor": actor.user if actor is not None else None,
            },
        )
        if g.get("request_id"):
            response.headers["X-Request-Id"] = g.request_id
        return response
