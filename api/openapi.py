"""The OpenAPI 3.0 description of the HTTP contract (DESIGN §4)."""

from __future__ import annotations

from functools import cache
from typing import Any

from engine.events import ENGINE_EVENTS, WILDCARD

OBJECT = {"type": "object", "additionalProperties": True}
PROBLEM = {
    "description": "Problem",
    "content": {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}},
}


def _op(
    summary: str,
    ok: str = "200",
    body: dict[str, Any] | None = None,
    params: list[dict[str, Any]] | None = None,
    public: bool = False,
    multipart: bool = False,
    also: tuple[str, ...] = (),
    limited: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        code: {"description": "OK", "content": {"application/json": {"schema": OBJECT}}}
        for code in (ok, *also)
    }
    for code in ("400", "404", "409", "422"):
        responses[code] = PROBLEM
    if not public:
        responses["401"] = PROBLEM
        responses["403"] = PROBLEM
    if body is not None:
        responses["413"] = PROBLEM  # FLOWGATE_MAX_BODY_BYTES
    if limited:
        responses["429"] = PROBLEM  # per-key rate limit (api/guards.py)
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body is not None:
        media = "multipart/form-data" if multipart else "application/json"
        op["requestBody"] = {"required": True, "content": {media: {"schema": body}}}
    if public:
        op["security"] = []
    return op


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


def _query(*names: str) -> list[dict[str, Any]]:
    return [
        {"name": n, "in": "query", "required": False, "schema": {"type": "string"}} for n in names
    ]


UPLOAD = {"type": "object", "properties": {"file": {"type": "string", "format": "binary"}}}
WEBHOOK_EVENTS = (
    f"`{WILDCARD}` for all, or any of: {', '.join(sorted(ENGINE_EVENTS))}; or an event a"
    " deployed model's `outbox.publish` task sends (its `event` property, else its id)"
)


@cache
def openapi_document() -> dict[str, Any]:
    start_body = {
        "type": "object",
        "properties": {
            "business_key": {"type": "string"},
            "variables": OBJECT,
            "version": {"type": "integer", "minimum": 1, "maximum": 2147483647},
        },
    }
    audit_export = _op(
        "Audit events as JSON lines (auditor)", params=_query("from", "to", "entity")
    )
    audit_export["responses"]["200"] = {
        "description": "One event per line",
        "content": {"application/x-ndjson": {"schema": {"type": "string"}}},
    }
    message_body = {
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200},
            "correlation_key": {"type": "string", "maxLength": 200},
            "payload": OBJECT,
            "message_id": {"type": "string", "maxLength": 200},
        },
    }
    return {
        "openapi": "3.0.3",
        "info": {"title": "flowgate", "version": "0.1.0"},
        "components": {
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "Problem": {
                    "type": "object",
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string"},
                        "errors": {"type": "array", "items": OBJECT},
                    },
                }
            },
        },
        "security": [{"bearer": []}],
        "paths": {
            "/healthz": {"get": _op("Liveness", public=True)},
            "/readyz": {"get": _op("Readiness (database reachable)", public=True)},
            "/api/v1/definitions": {
                "get": _op("List process keys and versions"),
                "post": _op(
                    "Deploy .bpmn/.dmn files", "201", UPLOAD, multipart=True, also=("200",)
                ),
            },
            "/api/v1/definitions/validate": {
                "post": _op("Validate without deploying", body=UPLOAD, multipart=True)
            },
            "/api/v1/definitions/{key}/versions/{version}/bpmn": {
                "get": _op("The BPMN XML of a version", params=[_path("key"), _path("version")])
            },
            "/api/v1/processes/{key}/instances": {
                "post": _op(
                    "Start an instance (Idempotency-Key header)",
                    "201",
                    start_body,
                    [
                        _path("key"),
                        {
                            "name": "Idempotency-Key",
                            "in": "header",
                            "required": False,
                            "schema": {"type": "string"},
                        },
                    ],
                    also=("200",),
                    limited=True,
                )
            },
            "/api/v1/instances": {
                "get": _op(
                    "List instances",
                    params=_query("process_key", "status", "business_key", "page", "page_size"),
                )
            },
            "/api/v1/instances/{id}": {"get": _op("One instance", params=[_path("id")])},
            "/api/v1/instances/{id}/cancel": {"post": _op("Cancel", params=[_path("id")])},
            "/api/v1/instances/{id}/retry": {
                "post": _op("Retry an incident", params=[_path("id")])
            },
            "/api/v1/messages": {
                "post": _op(
                    "Deliver or buffer an ERP message",
                    body=message_body,
                    also=("202",),
                    limited=True,
                )
            },
            "/api/v1/tasks": {
                "get": _op(
                    "The inbox",
                    params=_query(
                        "scope",
                        "status",
                        "state",
                        "process_key",
                        "business_key",
                        "overdue",
                        "sort",
                        "page",
                        "page_size",
                    ),
                )
            },
            "/api/v1/tasks/{id}": {
                "get": _op("One task with its form's JSON Schema and context", params=[_path("id")])
            },
            "/api/v1/tasks/{id}/claim": {"post": _op("Claim", params=[_path("id")])},
            "/api/v1/tasks/{id}/unclaim": {"post": _op("Give back", params=[_path("id")])},
            "/api/v1/tasks/{id}/delegate": {
                "post": _op(
                    "Hand on to a candidate user or a standing delegate",
                    body={"type": "object", "properties": {"user": {"type": "string"}}},
                    params=[_path("id")],
                )
            },
            "/api/v1/tasks/{id}/comments": {
                "get": _op("The task's comments", params=[_path("id")]),
                "post": _op(
                    "Add an immutable comment",
                    "201",
                    {
                        "type": "object",
                        "properties": {
                            "text": {"type": "string", "minLength": 1, "maxLength": 4000}
                        },
                    },
                    [_path("id")],
                ),
            },
            "/api/v1/delegations": {
                "get": _op("Delegations from or to the caller"),
                "post": _op(
                    "Let a delegate act for the caller inside a window",
                    "201",
                    {
                        "type": "object",
                        "properties": {
                            "delegate": {"type": "string", "maxLength": 200},
                            "valid_from": {"type": "string", "format": "date-time"},
                            "valid_to": {"type": "string", "format": "date-time"},
                            "process_key": {"type": "string", "maxLength": 200},
                            "reason": {"type": "string"},
                        },
                    },
                ),
            },
            "/api/v1/tasks/{id}/complete": {
                "post": _op(
                    "Complete with form variables",
                    body={"type": "object", "properties": {"variables": OBJECT}},
                    params=[_path("id")],
                )
            },
            "/api/v1/rulesets": {"get": _op("Each ruleset with its active version")},
            "/api/v1/rulesets/{key}": {
                "get": _op(
                    "Rules, parameters in force and scenarios of the active version",
                    params=[_path("key"), *_query("as_of", "version")],
                )
            },
            "/api/v1/rulesets/{key}/versions": {
                "post": _op(
                    "Publish a version: validated, limit-checked and scenario-tested, then active",
                    "201",
                    OBJECT,
                    [_path("key")],
                )
            },
            "/api/v1/rulesets/{key}/parameters": {
                "put": _op(
                    "A new parameter version",
                    "201",
                    {
                        "type": "object",
                        "required": ["values", "effective_from"],
                        "properties": {
                            # Decimals as strings ("12.50"): a JSON float is refused.
                            "values": {
                                "type": "object",
                                "additionalProperties": {
                                    "anyOf": [
                                        {"type": "string"},
                                        {"type": "integer"},
                                        {"type": "boolean"},
                                        {"type": "array", "items": {"type": "string"}},
                                    ]
                                },
                            },
                            "effective_from": {"type": "string", "format": "date"},
                        },
                    },
                    [_path("key")],
                )
            },
            "/api/v1/rulesets/{key}/evaluate": {
                "post": _op(
                    "Dry run, not recorded",
                    body={
                        "type": "object",
                        "required": ["facts"],
                        "properties": {
                            "facts": OBJECT,
                            "as_of": {"type": "string", "format": "date"},
                            "version": {"type": "integer"},
                        },
                    },
                    params=[_path("key")],
                )
            },
            "/api/v1/rulesets/{key}/replay": {
                "post": _op(
                    "What-if: re-run recorded decisions of a period against a candidate",
                    body={
                        "type": "object",
                        "required": ["from", "to"],
                        "properties": {
                            "version": {"type": "integer"},
                            "ruleset": OBJECT,
                            "parameters": OBJECT,
                            "from": {"type": "string", "format": "date"},
                            "to": {"type": "string", "format": "date"},
                        },
                    },
                    params=[_path("key")],
                )
            },
            "/api/v1/decisions": {
                "get": _op(
                    "Decision records",
                    params=_query("instance_id", "ruleset_key", "page", "page_size"),
                )
            },
            "/api/v1/decisions/{id}": {"get": _op("One decision record", params=[_path("id")])},
            "/api/v1/webhooks": {
                "get": _op("List webhooks"),
                "post": _op(
                    "Subscribe a webhook",
                    "201",
                    {
                        "type": "object",
                        "required": ["url", "events", "secret"],
                        "properties": {
                            "url": {"type": "string", "maxLength": 2000},
                            "events": {
                                "type": "array",
                                "description": WEBHOOK_EVENTS,
                                "minItems": 1,
                                "items": {"type": "string"},
                            },
                            "secret": {"type": "string", "minLength": 16, "maxLength": 200},
                        },
                    },
                ),
            },
            "/api/v1/audit": {
                "get": _op(
                    "Audit events in chain order (auditor)",
                    params=_query("from", "to", "entity", "page", "page_size"),
                )
            },
            "/api/v1/audit/export": {"get": audit_export},
            "/api/v1/audit/verify": {"get": _op("Verify the audit hash chain (auditor)")},
            "/api/v1/reports/receivables": {
                "get": _op(
                    "Receivables KPIs of an ended period, with their inputs (DOMAIN §1)",
                    params=_query("from", "to", "currency"),
                )
            },
            # Procure to pay (issue 5).
            "/api/v1/suppliers/{id}": {
                "put": _op(
                    "Supplier master data from the ERP (201 when new)",
                    body={
                        "type": "object",
                        "required": ["name", "blocked", "bank_account_trusted"],
                        "properties": {
                            "name": {"type": "string"},
                            "blocked": {"type": "boolean"},
                            "bank_account_trusted": {"type": "boolean"},
                            "payment_terms": {
                                "type": "object",
                                "properties": {
                                    "net_days": {"type": "integer"},
                                    "discount_pct": {"type": "string"},
                                    "discount_days": {"type": "integer"},
                                },
                            },
                        },
                    },
                    params=[_path("id")],
                    also=("201",),
                ),
                "get": _op("One supplier", params=[_path("id")]),
            },
            "/api/v1/users/{id}/delegations": {
                "post": _op(
                    "Delegate an approver's tasks for a date range (segregation of duties holds)",
                    "201",
                    {
                        "type": "object",
                        "required": ["delegate", "from", "to"],
                        "properties": {
                            "delegate": {"type": "string", "maxLength": 200},
                            "from": {"type": "string"},
                            "to": {"type": "string"},
                            "process_key": {"type": "string", "maxLength": 200},
                            "reason": {"type": "string"},
                        },
                    },
                    params=[_path("id")],
                )
            },
            "/api/v1/purchase-orders/{po_no}": {
                "get": _op(
                    "A purchase order with received lots and vendor invoices",
                    params=[_path("po_no")],
                )
            },
        },
    }
