"""RulesService: evaluate, re-evaluate, publish, set parameters and replay (rules/README)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import date
from typing import Any

from rules.conditions import COMPILE_TIMEOUT_SECONDS, compile_in_subprocess
from rules.decision import Decision, FiredRule
from rules.errors import NoParametersInForce, RuleEvaluationFailed, RulesetInvalid, UnknownRuleset
from rules.host import RulesHost, get_host
from rules.model import ParameterSet, ParameterVersion, Ruleset, parse_ruleset
from rules.repository import RulesetRepository, parameters_in_force

MAX_REPLAY_EXAMPLES = 10
# Parameter sets kept per service; a handful of keys times their live versions.
_PARAMETER_SETS_KEPT = 256

# (parameter version, effective values) for a scenario's as_of date.
ParameterSource = Callable[[date], tuple[int, dict[str, Any]]]


class RulesService:
    def __init__(
        self,
        repository: RulesetRepository,
        host: RulesHost | None = None,
        compile_timeout: float = COMPILE_TIMEOUT_SECONDS,
    ) -> None:
        self._repository = repository
        self._host = host or get_host()
        self._compile_timeout = compile_timeout
        self._engine_names: dict[tuple[str, int, str], str] = {}
        # Encoded parameter sets by (id(ruleset), id(parameter version)). Each entry holds both
        # objects, so neither id can be reused by another object while the entry exists.
        self._parameter_sets: dict[
            tuple[int, int], tuple[Ruleset, ParameterVersion, ParameterSet]
        ] = {}

    def list_keys(self) -> list[str]:
        """Every ruleset key the repository holds."""
        return self._repository.list_keys()

    def ruleset(self, key: str, version: int | None = None) -> Ruleset:
        if version is None:
            return self._repository.get_active(key)
        return self._repository.get(key, version)

    def parameters(self, key: str, as_of: date) -> tuple[int, dict[str, Any]]:
        """The parameter version in force at `as_of` and its values over the active defaults."""
        return self._parameters_for(self.ruleset(key), as_of)

    def evaluate_derived(
        self, key: str, as_of: date, derive: Callable[[Mapping[str, Any]], Mapping[str, Any]]
    ) -> Decision:
        """Decide on the facts `derive` computes from the parameters in force at `as_of`.

        One parameter lookup serves the derivation and the decision, so both see the same
        parameter version even if an analyst publishes a new one in between.
        """
        ruleset = self.ruleset(key)
        parameters = self._parameter_set(ruleset, as_of)
        return self._decide(ruleset, parameters, derive(parameters.values), as_of)

    def evaluate(
        self, key: str, facts: Mapping[str, Any], as_of: date, *, version: int | None = None
    ) -> Decision:
        """Decide on `facts` with the active ruleset and the parameters in force at `as_of`.

        Raises FactsInvalid for bad input and RuleEvaluationFailed when the engine fails;
        callers record the latter as a hold (fail closed, DESIGN §3).
        """
        ruleset = self.ruleset(key, version)
        parameters = self._parameter_set(ruleset, as_of)
        return self._decide(ruleset, parameters, facts, as_of)

    def reevaluate(self, record: Mapping[str, Any]) -> Decision:
        """Re-run a decision record with its own ruleset version and parameter values."""
        ruleset = self._repository.get(record["ruleset_key"], record["ruleset_version"])
        return self._decide(
            ruleset,
            ruleset.parameter_set(
                record["parameter_version"],
                ruleset.coerce_parameters(record["parameters"], partial=False),
            ),
            record["facts"],
            date.fromisoformat(record["as_of"]),
        )

    def publish(self, document: Mapping[str, Any]) -> Ruleset:
        """Validate, check engine limits and run scenarios; store as the next version."""
        key = document.get("key")
        ruleset = self._candidate(document)
        failures = self._scenario_failures(
            ruleset, lambda as_of: self._parameters_for(ruleset, as_of)
        )
        if failures:
            raise RulesetInvalid(failures)
        self._repository.add(ruleset)
        if not self._repository.parameter_versions(str(key)):
            self._repository.add_parameter_version(
                ParameterVersion(
                    ruleset.key, 1, ruleset.defaults_effective_from, ruleset.parameter_defaults
                )
            )
        return ruleset

    def set_parameters(
        self, key: str, values: Mapping[str, Any], effective_from: date
    ) -> ParameterVersion:
        """Store a new parameter version, after type checks and a scenario run against it."""
        ruleset = self.ruleset(key)
        if not values:
            raise RulesetInvalid([{"field": "parameters", "message": "no parameter values given"}])
        changed = ruleset.coerce_parameters(values, partial=True, floats=False)
        _, base = self._parameters_for(ruleset, effective_from)
        candidate = {**base, **changed}
        versions = self._repository.parameter_versions(key)
        next_version = max((p.version for p in versions), default=0) + 1
        failures = self._scenario_failures(ruleset, lambda _: (next_version, candidate))
        if failures:
            raise RulesetInvalid(failures)
        parameter_version = ParameterVersion(key, next_version, effective_from, candidate)
        self._repository.add_parameter_version(parameter_version)
        return parameter_version

    def replay(
        self, key: str, candidate: Mapping[str, Any], records: Iterable[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """What-if: re-run stored decisions against a candidate ruleset or parameter values.

        `candidate` is a ruleset document (it has `rules`) or a mapping of parameter values.
        """
        if "rules" in candidate:
            new_ruleset = self._candidate({**candidate, "key": key})

            def rerun(record: Mapping[str, Any]) -> Decision:
                recorded = record["parameters"]
                kept = {k: v for k, v in recorded.items() if k in new_ruleset.parameter_types}
                defaults = new_ruleset.parameters_to_json(new_ruleset.parameter_defaults)
                ruleset_parameters = {**defaults, **kept}
                return self._decide(
                    new_ruleset,
                    new_ruleset.parameter_set(
                        record["parameter_version"],
                        new_ruleset.coerce_parameters(ruleset_parameters, partial=False),
                    ),
                    record["facts"],
                    date.fromisoformat(record["as_of"]),
                )
        else:
            changes = self.ruleset(key).coerce_parameters(candidate, partial=True)

            def rerun(record: Mapping[str, Any]) -> Decision:
                ruleset = self._repository.get(key, record["ruleset_version"])
                recorded = ruleset.coerce_parameters(record["parameters"], partial=False)
                applicable = {k: v for k, v in changes.items() if k in ruleset.parameter_types}
                return self._decide(
                    ruleset,
                    ruleset.parameter_set(record["parameter_version"], {**recorded, **applicable}),
                    record["facts"],
                    date.fromisoformat(record["as_of"]),
                )

        total, examples, changed = 0, [], 0
        for record in records:
            total += 1
            after = rerun(record)
            if after.outcome != record["outcome"]:
                changed += 1
                if len(examples) < MAX_REPLAY_EXAMPLES:
                    examples.append(
                        {
                            "as_of": record["as_of"],
                            "facts": record["facts"],
                            "outcome_before": record["outcome"],
                            "outcome_after": after.outcome,
                            "fired_before": [f["rule_id"] for f in record["fired"]],
                            "fired_after": after.fired_ids,
                        }
                    )
        return {"total": total, "changed": changed, "examples": examples}

    def _candidate(self, document: Mapping[str, Any]) -> Ruleset:
        """Parse a ruleset document as the next version of its key and check it compiles."""
        key = document.get("key")
        try:
            current = self._repository.get_active(str(key)).version
        except UnknownRuleset:
            current = 0
        ruleset = parse_ruleset({**document, "version": current + 1})
        error = compile_in_subprocess(ruleset.engine_definition(), self._compile_timeout)
        if error:
            raise RulesetInvalid([{"field": "rules", "message": error}])
        return ruleset

    def _parameters_for(self, ruleset: Ruleset, as_of: date) -> tuple[int, dict[str, Any]]:
        parameters = self._parameter_set(ruleset, as_of)
        return parameters.version, dict(parameters.values)

    def _parameter_set(self, ruleset: Ruleset, as_of: date) -> ParameterSet:
        versions = self._repository.parameter_versions(ruleset.key)
        try:
            in_force = parameters_in_force(versions, as_of)
        except NoParametersInForce:
            if versions:
                raise
            # A key being published for the first time.
            return ruleset.parameter_set(0, dict(ruleset.parameter_defaults))
        cache_key = (id(ruleset), id(in_force))
        cached = self._parameter_sets.get(cache_key)
        if cached is not None:
            return cached[2]
        # Defaults fill parameters that a newer ruleset version introduced.
        own = {k: v for k, v in in_force.values.items() if k in ruleset.parameter_types}
        parameters = ruleset.parameter_set(in_force.version, {**ruleset.parameter_defaults, **own})
        if len(self._parameter_sets) >= _PARAMETER_SETS_KEPT:
            self._parameter_sets.clear()
        self._parameter_sets[cache_key] = (ruleset, in_force, parameters)
        return parameters

    def _scenario_failures(
        self, ruleset: Ruleset, parameters_at: ParameterSource
    ) -> list[dict[str, Any]]:
        failures = []
        for scenario in ruleset.scenarios:
            parameter_version, parameters = parameters_at(scenario.as_of)
            try:
                decision = self._decide(
                    ruleset,
                    ruleset.parameter_set(parameter_version, {**parameters, **scenario.parameters}),
                    dict(scenario.facts),
                    scenario.as_of,
                )
            except RuleEvaluationFailed as error:
                failures.append({"scenario": scenario.name, "message": str(error)})
                continue
            fired_ok = scenario.expect_fired is None or decision.fired_ids == list(
                scenario.expect_fired
            )
            if decision.outcome != scenario.expect_outcome or not fired_ok:
                failures.append(
                    {
                        "scenario": scenario.name,
                        "message": f"expected {scenario.expect_outcome} firing "
                        f"{list(scenario.expect_fired or [])}, got {decision.outcome} firing "
                        f"{decision.fired_ids}",
                    }
                )
        return failures

    def _decide(
        self, ruleset: Ruleset, parameters: ParameterSet, raw_facts: Mapping[str, Any], as_of: date
    ) -> Decision:
        """Raise FactsInvalid for bad `raw_facts`, RuleEvaluationFailed if the engine fails."""
        facts, engine_members, facts_json = ruleset.prepare_facts(raw_facts)
        fired_ids = self._host.fire(
            self._engine_name(ruleset), [*engine_members, *parameters.engine_members]
        )
        fired = tuple(
            FiredRule(
                rule.id,
                rule.outcome,
                rule.render_reason(facts, parameters.values),
                rule.priority,
                dict(rule.emit),
            )
            for rule in ruleset.fired_rules(fired_ids)
        )
        return Decision(
            ruleset_key=ruleset.key,
            ruleset_version=ruleset.version,
            parameter_version=parameters.version,
            as_of=as_of,
            facts=facts,
            parameters=parameters.values,
            fired=fired,
            facts_json=facts_json,
            parameters_json=parameters.record,
        )

    def _engine_name(self, ruleset: Ruleset) -> str:
        cache_key = (ruleset.key, ruleset.version, ruleset.digest)
        name = self._engine_names.get(cache_key)
        if name is None:
            name = self._host.register(ruleset.engine_name, ruleset.engine_definition())
            self._engine_names[cache_key] = name
        return name
