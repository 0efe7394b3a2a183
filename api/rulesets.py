"""Rulesets: read, publish a version, set parameters, dry-run and what-if replay (DESIGN §4).

Errors from `rules/` (RulesetInvalid, FactsInvalid, UnknownRuleset...) become problem+json in
api/errors.py; publishing and parameter changes are scenario-tested by RulesService first.
"""

from __future__ import annotations

from datetime import date
from typing import TYPE_CHECKING, Any

from flask import Blueprint, request

from api.requests import actor, field, int_arg, json_body, runtime
from engine.errors import FlowgateError, ValidationFailed
from engine.store.decision_records import records_for_replay
from engine.store.rulesets import jsonable, published_by, ruleset_history
from rules.errors import FactsInvalid, RulesetInvalid

if TYPE_CHECKING:
    from rules.model import Ruleset
    from rules.service import RulesService

bp = Blueprint("rulesets", __name__, url_prefix="/api/v1/rulesets")


class RulesUnavailable(FlowgateError):
    title = "Rules engine unavailable"
    status = 503


def rules_service() -> RulesService:
    """The RulesService the engine's business rule tasks use, so both see the same versions."""
    service = getattr(runtime().rules, "rules", None)
    if service is None:
        raise RulesUnavailable("no rules engine is wired into this server")
    return service


def _today() -> date:
    return runtime().clock().date()


def _date(raw: Any, name: str) -> date:
    if isinstance(raw, str):
        try:
            return date.fromisoformat(raw)
        except ValueError:
            pass
    raise ValidationFailed(
        f"'{name}' must be an ISO date", [{"field": name, "message": "must be an ISO date"}]
    )


def _summary(service: RulesService, ruleset: Ruleset, as_of: date) -> dict[str, Any]:
    parameter_version, _ = service.parameters(ruleset.key, as_of)
    return {
        "key": ruleset.key,
        "title": ruleset.title,
        "version": ruleset.version,
        "parameter_version": parameter_version,
        "rules": len(ruleset.rules),
        "scenarios": len(ruleset.scenarios),
    }


@bp.get("")
def list_rulesets():
    service, today = rules_service(), _today()
    return {
        "items": [_summary(service, service.ruleset(key), today) for key in service.list_keys()]
    }


@bp.get("/<key>")
def get_ruleset(key: str):
    """The active version (or `?version=`), with the parameters in force at `?as_of=` (today)."""
    service = rules_service()
    as_of = _date(request.args["as_of"], "as_of") if "as_of" in request.args else _today()
    version = int_arg("version")
    ruleset = service.ruleset(key, version)
    parameter_version, in_force = service.parameters(key, as_of)
    effective = {
        name: in_force.get(name, ruleset.parameter_defaults.get(name))
        for name in ruleset.parameter_types
    }
    source = ruleset.to_json()
    with runtime().uow(write=False) as uow:
        history = ruleset_history(uow, key)
    return {
        "key": ruleset.key,
        "version": ruleset.version,
        "active_version": service.ruleset(key).version,
        "title": ruleset.title,
        "facts": dict(ruleset.fact_types),
        "parameters": {
            "schema": dict(ruleset.parameter_types),
            "as_of": as_of.isoformat(),
            "version": parameter_version,
            "values": ruleset.parameters_to_json(effective),
        },
        "rules": jsonable(source.get("rules", [])),
        "scenario_facts": jsonable(source.get("scenario_facts", {})),
        "scenarios": jsonable(source.get("scenarios", [])),
        **history,
    }


@bp.post("/<key>/versions")
def publish_version(key: str):
    """Validate, check engine limits, run the scenarios; only then store and activate."""
    document = json_body()
    if document.get("key", key) != key:
        raise ValidationFailed(
            f"the body's key {document.get('key')!r} is not {key!r}",
            [{"field": "key", "message": f"must be {key!r} (the key in the path)"}],
        )
    service = rules_service()
    with published_by(actor().user):
        ruleset = service.publish({**document, "key": key})
    return {
        "key": ruleset.key,
        "version": ruleset.version,
        "title": ruleset.title,
        "digest": ruleset.digest,
        "rules": [rule.id for rule in ruleset.rules],
        "scenarios_passed": len(ruleset.scenarios),
        "published_by": actor().user,
    }, 201


@bp.put("/<key>/parameters")
def set_parameters(key: str):
    """A new parameter version from `effective_from`; refused when a scenario would fail."""
    body = json_body()
    changes = field(body, "values", dict)
    effective_from = _date(body.get("effective_from"), "effective_from")
    service = rules_service()
    try:
        with published_by(actor().user):
            stored = service.set_parameters(key, changes, effective_from)
    except RulesetInvalid as exc:
        # Name the request's field: the caller sent `values`, not `parameters`.
        raise RulesetInvalid([_as_request_field(e) for e in exc.errors]) from None
    return {
        "key": key,
        "version": stored.version,
        "effective_from": stored.effective_from.isoformat(),
        "values": service.ruleset(key).parameters_to_json(stored.values),
        "published_by": actor().user,
    }, 201


@bp.post("/<key>/evaluate")
def evaluate(key: str):
    """A dry run with the active version and the parameters in force at `as_of`: not recorded."""
    body = json_body()
    facts = field(body, "facts", dict)
    as_of = _date(body["as_of"], "as_of") if body.get("as_of") is not None else _today()
    version = field(body, "version", int, required=False)
    decision = rules_service().evaluate(key, facts, as_of, version=version)
    return {**decision.to_record(), "fired_ids": decision.fired_ids, "recorded": False}


@bp.post("/<key>/replay")
def replay(key: str):
    """What-if: re-run the decisions recorded `from`..`to` against a candidate.

    The candidate is a stored `version`, an unpublished `ruleset` document, or `parameters`
    (values that replace the recorded ones). Nothing is stored.
    """
    body = json_body()
    first, last = _date(body.get("from"), "from"), _date(body.get("to"), "to")
    if last < first:
        raise ValidationFailed("'to' is before 'from'", [{"field": "to", "message": "before from"}])
    given = [name for name in ("version", "ruleset", "parameters") if body.get(name) is not None]
    if len(given) != 1:
        raise ValidationFailed(
            "give exactly one candidate: version, ruleset or parameters",
            [{"field": name, "message": "give exactly one candidate"} for name in given]
            or [{"field": "version", "message": "a candidate is required"}],
        )
    service = rules_service()
    if given == ["version"]:
        candidate = service.ruleset(key, field(body, "version", int)).to_json()
    else:
        candidate = field(body, given[0], dict)
        if given == ["ruleset"] and "rules" not in candidate:
            raise ValidationFailed(
                "the candidate ruleset has no rules",
                [{"field": "ruleset.rules", "message": "required"}],
            )
    with runtime().uow(write=False) as uow:
        records, truncated = records_for_replay(uow, key, first, last)
    try:
        result = service.replay(key, candidate, records)
    except FactsInvalid as exc:
        raise ValidationFailed(
            f"the stored decisions do not carry the candidate's facts: {exc}", exc.errors
        ) from None
    return {
        "key": key,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "candidate": given[0],
        **result,
        "truncated": truncated,
    }


def _as_request_field(error: dict[str, Any]) -> dict[str, Any]:
    name = error.get("field")
    if isinstance(name, str) and name.startswith("parameters."):
        return {**error, "field": "values." + name.removeprefix("parameters.")}
    return error
