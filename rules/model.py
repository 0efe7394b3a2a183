"""Rulesets, rules, scenarios and parameter versions, parsed from the JSON in rules/README."""

from __future__ import annotations

import hashlib
import json
import string
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from types import MappingProxyType
from typing import Any

from rules import values
from rules.conditions import compile_condition, limit_errors, referenced_names
from rules.errors import FactsInvalid, RulesetInvalid

OUTCOMES = ("pass", "warn", "hold", "reject")
_RESERVED_FACTS = frozenset({"sid", "id"})


@dataclass(frozen=True)
class Rule:
    id: str
    priority: int
    when: Mapping[str, Any]
    outcome: str
    reason: str
    emit: Mapping[str, Any] = field(default_factory=dict)
    engine_condition: Mapping[str, Any] = field(default_factory=dict, compare=False)

    @cached_property
    def _reason_parts(self) -> tuple[tuple[str, str | None], ...]:
        # Parsed once: the template was validated when the ruleset was parsed.
        return tuple(
            (literal, name) for literal, name, _, _ in string.Formatter().parse(self.reason)
        )

    def render_reason(self, facts: Mapping[str, Any], parameters: Mapping[str, Any]) -> str:
        """Fill `{name}` placeholders with original (unscaled) fact or parameter values."""
        return "".join(
            literal
            if name is None
            else literal + values.render(facts[name] if name in facts else parameters[name])
            for literal, name in self._reason_parts
        )


@dataclass(frozen=True)
class Scenario:
    name: str
    as_of: date
    facts: Mapping[str, Any]
    expect_outcome: str
    expect_fired: tuple[str, ...] | None
    # Pinned parameter values, so a boundary scenario survives a threshold change.
    parameters: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ParameterVersion:
    key: str
    version: int
    effective_from: date
    values: Mapping[str, Any]


@dataclass(frozen=True)
class ParameterSet:
    """Parameter values for one ruleset, with their engine and record encodings."""

    version: int
    values: Mapping[str, Any]
    engine_members: tuple[str, ...]  # see values.engine_member
    record: Mapping[str, Any]


@dataclass(frozen=True)
class Ruleset:
    key: str
    version: int
    title: str
    fact_types: Mapping[str, str]
    parameter_types: Mapping[str, str]
    parameter_defaults: Mapping[str, Any]
    defaults_effective_from: date
    rules: tuple[Rule, ...]
    scenarios: tuple[Scenario, ...]
    source: Mapping[str, Any] = field(compare=False, repr=False, default_factory=dict)
    # `parameters.choices`: the values a string parameter may take. "bogus" for
    # p_exposure_check was stored, and every credit check quietly used the static exposure.
    parameter_choices: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)

    @property
    def engine_name(self) -> str:
        return f"{self.key}@{self.version}"

    @cached_property
    def digest(self) -> str:
        """Identifies the rule structure, so a host never confuses two definitions."""
        encoded = json.dumps(self.engine_definition(), sort_keys=True).encode()
        return hashlib.sha256(encoded).hexdigest()[:16]

    def rule(self, rule_id: str) -> Rule:
        return self._rules_by_id[rule_id]

    def fired_rules(self, rule_ids: Iterable[str]) -> list[Rule]:
        """The rules named by `rule_ids`, each once, by priority (ties: id)."""
        return sorted((self._rules_by_id[rule_id] for rule_id in set(rule_ids)), key=_rule_order)

    def engine_definition(self) -> dict[str, Any]:
        """The durable-rules definition, without actions (the host adds them)."""
        return {r.id: {"all": [{"m": dict(r.engine_condition)}]} for r in self.rules}

    def to_json(self) -> dict[str, Any]:
        return {**self.source, "version": self.version}

    def coerce_facts(self, raw: Mapping[str, Any]) -> dict[str, Any]:
        """Type-check evaluation input: every declared fact, nothing else (raise FactsInvalid)."""
        facts, errors = _coerce_all(self.fact_types, raw, "facts")
        if errors:
            raise FactsInvalid(errors)
        return facts

    def coerce_parameters(
        self, raw: Mapping[str, Any], *, partial: bool, floats: bool = True
    ) -> dict[str, Any]:
        """Type-check parameter values; `partial` allows a subset, `floats=False` refuses JSON
        numbers with a fraction (raise RulesetInvalid)."""
        types = {k: t for k, t in self.parameter_types.items() if not partial or k in raw}
        coerced, errors = _coerce_all(types, raw, "parameters", floats)
        errors += _outside_choices(self.parameter_choices, coerced, "parameters")
        if errors:
            raise RulesetInvalid(errors)
        return coerced

    def facts_to_json(self, facts: Mapping[str, Any]) -> dict[str, Any]:
        return {k: values.to_json(self.fact_types[k], v) for k, v in facts.items()}

    def parameters_to_json(self, parameters: Mapping[str, Any]) -> dict[str, Any]:
        return {k: values.to_json(self.parameter_types[k], v) for k, v in parameters.items()}

    def prepare_facts(
        self, raw: Mapping[str, Any]
    ) -> tuple[dict[str, Any], list[str], dict[str, Any]]:
        """Type-check evaluation input like `coerce_facts`; return the coerced facts, the JSON
        members the engine is sent and what the decision record holds, in one pass."""
        if not (isinstance(raw, Mapping) and raw.keys() == self.fact_types.keys()):
            self.coerce_facts(raw)  # raises FactsInvalid naming every problem
        facts: dict[str, Any] = {}
        engine: list[str] = []
        record: dict[str, Any] = {}
        try:
            for name, codec, in_condition in self._fact_codecs:
                value = facts[name] = codec.coerce(raw[name])
                if in_condition:
                    engine.append(values.engine_member(name, codec.to_engine(value)))
                record[name] = codec.to_json(value)
        except ValueError:
            self.coerce_facts(raw)  # raises FactsInvalid naming every problem
            raise
        return facts, engine, record

    def parameter_set(self, version: int, parameters: Mapping[str, Any]) -> ParameterSet:
        """Coerced parameter values with their encodings (rules/README: parameters join facts).

        The values are read-only: one set is shared by every decision made with that version,
        and `Decision.to_record` copies the encodings.
        """
        engine = tuple(
            values.engine_member(name, values.to_engine(self.parameter_types[name], value))
            for name, value in parameters.items()
            if name in self._condition_names
        )
        return ParameterSet(
            version, MappingProxyType(dict(parameters)), engine, self.parameters_to_json(parameters)
        )

    @cached_property
    def _condition_names(self) -> frozenset[str]:
        # The engine is sent only what some condition reads: smaller facts to encode and parse.
        return frozenset().union(*(referenced_names(r.engine_condition) for r in self.rules))

    @cached_property
    def _fact_codecs(self) -> tuple[tuple[str, values.Codec, bool], ...]:
        return tuple(
            (name, values.codec(t), name in self._condition_names)
            for name, t in self.fact_types.items()
        )

    @cached_property
    def _rules_by_id(self) -> dict[str, Rule]:
        return {rule.id: rule for rule in self.rules}


def _rule_order(rule: Rule) -> tuple[int, str]:
    return rule.priority, rule.id


def parse_ruleset(data: Mapping[str, Any]) -> Ruleset:
    """Parse and validate a ruleset document; raise RulesetInvalid listing every problem."""
    errors: list[dict[str, Any]] = []
    if not isinstance(data, Mapping):
        raise RulesetInvalid([{"field": "ruleset", "message": "a ruleset must be a JSON object"}])
    key = data.get("key")
    if not isinstance(key, str) or not key or "@" in key:
        errors.append({"field": "key", "message": "key must be a non-empty string without '@'"})
    version = data.get("version", 1)
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        errors.append({"field": "version", "message": "version must be a positive integer"})
    fact_types = _declared_types(data.get("facts"), "facts", values.FACT_TYPES, errors)
    for name in fact_types:
        if name.startswith(("p_", "_")) or name in _RESERVED_FACTS:
            errors.append({"field": f"facts.{name}", "message": "reserved fact name"})
    raw_parameters = data.get("parameters") or {}
    if not isinstance(raw_parameters, Mapping):
        errors.append({"field": "parameters", "message": "must be an object"})
        raw_parameters = {}
    parameter_types = _declared_types(
        raw_parameters.get("schema", {}), "parameters.schema", values.PARAMETER_TYPES, errors
    )
    for name in parameter_types:
        if not name.startswith("p_"):
            errors.append({"field": f"parameters.schema.{name}", "message": "must start with p_"})
    defaults, default_errors = _coerce_all(
        parameter_types, raw_parameters.get("defaults", {}), "parameters.defaults"
    )
    errors += default_errors
    choices = _parse_choices(raw_parameters.get("choices", {}), parameter_types, errors)
    errors += _outside_choices(choices, defaults, "parameters.defaults")
    effective_from = _parse_date(
        raw_parameters.get("effective_from", "2000-01-01"), "parameters.effective_from", errors
    )
    types = {**fact_types, **parameter_types}
    rules = _parse_rules(data.get("rules"), types, errors)
    # Declared ids, valid or not, so a broken rule is reported once, not by every scenario.
    raw_rules = data.get("rules") if isinstance(data.get("rules"), list) else []
    rule_ids = {
        item["id"]
        for item in raw_rules
        if isinstance(item, Mapping) and isinstance(item.get("id"), str)
    }
    scenarios = _parse_scenarios(
        data.get("scenarios", []),
        data.get("scenario_facts", {}),
        fact_types,
        parameter_types,
        rule_ids,
        errors,
    )
    if errors:
        raise RulesetInvalid(errors)
    return Ruleset(
        key=key,
        version=version,
        title=str(data.get("title", key)),
        fact_types=fact_types,
        parameter_types=parameter_types,
        parameter_defaults=defaults,
        defaults_effective_from=effective_from,
        rules=tuple(sorted(rules, key=_rule_order)),
        scenarios=tuple(scenarios),
        source=dict(data),
        parameter_choices=choices,
    )


def _parse_choices(
    raw: Any, types: Mapping[str, str], errors: list[dict[str, Any]]
) -> dict[str, tuple[Any, ...]]:
    """`parameters.choices`: {name: [allowed value, ...]} for declared string parameters."""
    if not isinstance(raw, Mapping):
        errors.append({"field": "parameters.choices", "message": "must be an object"})
        return {}
    choices = {}
    for name, allowed in raw.items():
        where = f"parameters.choices.{name}"
        if types.get(name) != "string":
            errors.append({"field": where, "message": "only a declared string parameter"})
        elif (
            not isinstance(allowed, list)
            or not allowed
            or not all(isinstance(value, str) for value in allowed)
        ):
            errors.append({"field": where, "message": "must be a non-empty list of strings"})
        else:
            choices[name] = tuple(allowed)
    return choices


def _outside_choices(
    choices: Mapping[str, tuple[Any, ...]], values_: Mapping[str, Any], prefix: str
) -> list[dict[str, Any]]:
    return [
        {"field": f"{prefix}.{name}", "message": f"must be one of {', '.join(allowed)}"}
        for name, allowed in choices.items()
        if name in values_ and values_[name] not in allowed
    ]


def _parse_rules(raw: Any, types: dict[str, str], errors: list[dict[str, Any]]) -> list[Rule]:
    if not isinstance(raw, list) or not raw:
        errors.append({"field": "rules", "message": "a ruleset needs a non-empty list of rules"})
        return []
    rules: list[Rule] = []
    comparisons = []
    seen: set[str] = set()
    for index, item in enumerate(raw):
        rule_id = item.get("id") if isinstance(item, Mapping) else None
        if not isinstance(rule_id, str) or not rule_id.isidentifier() or rule_id.startswith("_"):
            errors.append(
                {"field": f"rules[{index}].id", "message": "every rule needs an identifier as id"}
            )
            continue
        if rule_id in seen:
            errors.append({"rule_id": rule_id, "message": "duplicate rule id"})
            continue
        seen.add(rule_id)
        problems: list[dict[str, Any]] = []
        priority = item.get("priority", 100)
        if isinstance(priority, bool) or not isinstance(priority, int):
            problems.append({"rule_id": rule_id, "message": "priority must be an integer"})
        outcome = item.get("outcome")
        if outcome not in OUTCOMES:
            problems.append(
                {"rule_id": rule_id, "message": f"outcome {outcome!r} is not one of {OUTCOMES}"}
            )
        reason = item.get("reason", "")
        problems += _template_errors(rule_id, reason, types)
        emit = item.get("emit", {})
        if not isinstance(emit, Mapping):
            problems.append({"rule_id": rule_id, "message": "emit must be an object"})
        compiled = compile_condition(rule_id, item.get("when"), types)
        problems += compiled.errors
        comparisons += compiled.comparisons
        errors += problems
        if not problems:
            rules.append(
                Rule(rule_id, priority, item["when"], outcome, reason, emit, compiled.engine)
            )
    errors += limit_errors(comparisons)
    return rules


def _template_errors(rule_id: str, reason: Any, types: dict[str, str]) -> list[dict[str, Any]]:
    if not isinstance(reason, str):
        return [{"rule_id": rule_id, "message": "reason must be a string"}]
    try:
        parts = list(string.Formatter().parse(reason))
    except ValueError as error:
        return [{"rule_id": rule_id, "message": f"reason template: {error}"}]
    errors = []
    for _, name, spec, conversion in parts:
        if name is not None and (name not in types or spec or conversion):
            errors.append(
                {
                    "rule_id": rule_id,
                    "message": f"reason placeholder {{{name}}} must name a fact or parameter",
                }
            )
    return errors


def _parse_scenarios(
    raw: Any,
    base_facts: Mapping[str, Any],
    fact_types: dict[str, str],
    parameter_types: dict[str, str],
    rule_ids: set[str],
    errors: list[dict[str, Any]],
) -> list[Scenario]:
    if not isinstance(raw, list):
        errors.append({"field": "scenarios", "message": "scenarios must be a list"})
        return []
    if not isinstance(base_facts, Mapping):
        errors.append({"field": "scenario_facts", "message": "must be an object of facts"})
        base_facts = {}
    scenarios = []
    names: set[str] = set()
    for index, item in enumerate(raw):
        name = item.get("name") if isinstance(item, Mapping) else None
        if not isinstance(name, str) or not name or name in names:
            errors.append({"field": f"scenarios[{index}]", "message": "needs a unique name"})
            continue
        names.add(name)
        problems: list[dict[str, Any]] = []
        as_of = _parse_date(item.get("as_of"), f"scenarios[{index}].as_of", problems)
        own_facts, pins, expect = (
            _object_at(item, key, f"scenarios[{index}].{key}", problems)
            for key in ("facts", "parameters", "expect")
        )
        # `scenario_facts` holds the facts every scenario starts from; each names what differs.
        facts, fact_errors = _coerce_all(fact_types, {**base_facts, **own_facts}, "facts")
        pinned, pin_errors = _coerce_all(
            {k: t for k, t in parameter_types.items() if k in pins}, pins, "parameters"
        )
        problems += [
            {"scenario": name, "message": f"{e['field']}: {e['message']}"}
            for e in fact_errors + pin_errors
        ]
        if expect.get("outcome") not in OUTCOMES:
            problems.append({"scenario": name, "message": "expect.outcome must be an outcome"})
        fired = expect.get("fired")
        if fired is not None and (
            not isinstance(fired, list)
            or not all(isinstance(rule, str) for rule in fired)
            or set(fired) - rule_ids
        ):
            problems.append(
                {"scenario": name, "message": f"expect.fired names unknown rules: {fired}"}
            )
        errors += problems
        if not problems:
            scenarios.append(
                Scenario(
                    name,
                    as_of,
                    facts,
                    expect["outcome"],
                    tuple(fired) if fired is not None else None,
                    pinned,
                )
            )
    return scenarios


def _object_at(
    item: Mapping[str, Any], key: str, where: str, problems: list[dict[str, Any]]
) -> Mapping[str, Any]:
    """`item[key]` when it is an object (absent is empty); otherwise a problem naming it."""
    value = item.get(key, {})
    if isinstance(value, Mapping):
        return value
    problems.append({"field": where, "message": "must be an object"})
    return {}


def _declared_types(
    raw: Any, where: str, allowed: frozenset[str], errors: list[dict[str, Any]]
) -> dict[str, str]:
    if not isinstance(raw, Mapping):
        errors.append({"field": where, "message": "must map names to types"})
        return {}
    declared = {}
    for name, value_type in raw.items():
        if not isinstance(name, str) or not name.isidentifier():
            errors.append({"field": f"{where}.{name}", "message": "name must be an identifier"})
        elif not isinstance(value_type, str) or value_type not in allowed:
            errors.append(
                {
                    "field": f"{where}.{name}",
                    "message": f"type {value_type!r} is not one of {sorted(allowed)}",
                }
            )
        else:
            declared[name] = value_type
    return declared


def _coerce_all(
    types: Mapping[str, str], raw: Any, where: str, floats: bool = True
) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    if not isinstance(raw, Mapping):
        return {}, [{"field": where, "message": "must be an object"}]
    coerced, errors = {}, []
    for name in sorted(set(raw) - set(types)):
        errors.append({"field": f"{where}.{name}", "message": "not declared"})
    for name, value_type in types.items():
        if name not in raw:
            errors.append({"field": f"{where}.{name}", "message": "missing"})
            continue
        if not floats and isinstance(raw[name], float):
            # A binary float is not the number typed (0.1 is not a tenth); a limit or a
            # threshold in force for months is set exactly, as a decimal string or an integer.
            message = f'{value_type}: must be a decimal string such as "12.50" or an integer'
            errors.append({"field": f"{where}.{name}", "message": message})
            continue
        try:
            coerced[name] = values.coerce(value_type, raw[name])
        except ValueError as error:
            errors.append({"field": f"{where}.{name}", "message": f"{value_type}: {error}"})
    return coerced, errors


def _parse_date(raw: Any, where: str, errors: list[dict[str, Any]]) -> date:
    try:
        return values.coerce("date", raw)
    except ValueError as error:
        errors.append({"field": where, "message": str(error)})
        return date.min
