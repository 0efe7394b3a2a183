"""Map errors to application/problem+json, once, for every endpoint (DESIGN §4)."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from engine.errors import FlowgateError
from rules.errors import (
    FactsInvalid,
    NoParametersInForce,
    RuleEvaluationFailed,
    RulesError,
    RulesetInvalid,
    UnknownRuleset,
)

# rules/ raises its own exceptions (it knows nothing of HTTP); each gets a status here, once.
RULES_PROBLEMS: dict[type[RulesError], tuple[int, str]] = {
    UnknownRuleset: (404, "Unknown ruleset"),
    NoParametersInForce: (422, "No parameters in force"),
    FactsInvalid: (422, "Invalid facts"),
    RulesetInvalid: (422, "Ruleset or parameters rejected"),
    RuleEvaluationFailed: (503, "Rules evaluation failed"),
}

log = logging.getLogger("flowgate.api")


class BadRequest(FlowgateError):
    title = "Bad request"
    status = 400


class Unauthorized(FlowgateError):
    title = "Unauthorized"
    status = 401


def problem(
    status: int,
    title: str,
    detail: str,
    errors: list[dict[str, Any]] | None = None,
    headers: dict[str, str] | None = None,
) -> Response:
    body: dict[str, Any] = {
        "type": "about:blank",
        "title": title,
        "status": status,
        "detail": detail,
    }
    if errors:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype="application/problem+json")
    for name, value in (headers or {}).items():
        response.headers[name] = value
    return response


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(FlowgateError)
    def _domain(exc: FlowgateError) -> Response:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return problem(exc.status, exc.title, exc.detail, exc.errors, headers)

    @app.errorhandler(RulesError)
    def _rules(exc: RulesError) -> Response:
        status, title = next(
            (v for k, v in RULES_PROBLEMS.items() if isinstance(exc, k)), (422, "Rules error")
        )
        return problem(status, title, str(exc), getattr(exc, "errors", None))

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        return problem(exc.code or 500, exc.name, exc.description or exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        # Never leak internals; the log has the traceback for operators.
        log.exception("unhandled error")
        return problem(500, "Internal server error", "an unexpected error occurred")
