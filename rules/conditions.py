"""Rule conditions: validate them, encode them for durable-rules, and check engine limits.

The limits were measured on durable-rules 2.0.28 (DESIGN §3): a fact that matches more than 64
conditions on one field fails with error 303, and 513 distinct conditions on one field hang
`create_ruleset`. Both are refused before publishing; a test-compile in a child process with a
timeout catches what the static count cannot.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from rules import values

MAX_MATCHED_PER_FIELD = 64
MAX_DISTINCT_PER_FIELD = 512
COMPILE_TIMEOUT_SECONDS = 10.0

_COMPARISONS = frozenset({"$gt", "$gte", "$lt", "$lte", "$eq", "$neq"})
_ORDERED_COMPARISONS = frozenset({"$gt", "$gte", "$lt", "$lte"})
_COMBINATORS = frozenset({"$and", "$or"})


@dataclass(frozen=True)
class Comparison:
    """One comparison of a fact with a constant (`other` is None) or with another fact."""

    op: str
    field: str
    constant: Any = None
    other: str | None = None


@dataclass
class CompiledCondition:
    engine: dict[str, Any]
    comparisons: list[Comparison] = field(default_factory=list)
    errors: list[dict[str, Any]] = field(default_factory=list)


def compile_condition(rule_id: str, when: Any, types: dict[str, str]) -> CompiledCondition:
    """Validate `when` against the declared fact and parameter `types`; encode it for the engine."""
    compiled = CompiledCondition(engine={})
    compiled.engine = _node(rule_id, when, types, compiled)
    return compiled


def _node(rule_id: str, node: Any, types: dict[str, str], out: CompiledCondition) -> dict:
    if not isinstance(node, dict) or len(node) != 1:
        out.errors.append(
            {"rule_id": rule_id, "message": f"a condition must be an object with one key: {node!r}"}
        )
        return {}
    ((op, body),) = node.items()
    if op in _COMBINATORS:
        if not isinstance(body, list) or not body:
            out.errors.append({"rule_id": rule_id, "message": f"{op} needs a non-empty list"})
            return {}
        return {op: [_node(rule_id, child, types, out) for child in body]}
    if op in _COMPARISONS:
        if not isinstance(body, dict) or len(body) != 1:
            out.errors.append(
                {"rule_id": rule_id, "message": f"{op} needs an object with one fact name"}
            )
            return {}
        ((name, operand),) = body.items()
        return _comparison(rule_id, op, name, operand, types, out)
    if op.startswith("$"):
        out.errors.append({"rule_id": rule_id, "message": f"unsupported operator {op}"})
        return {}
    return _comparison(rule_id, "$eq", op, body, types, out)


def _comparison(
    rule_id: str, op: str, name: str, operand: Any, types: dict[str, str], out: CompiledCondition
) -> dict:
    value_type = _known_type(rule_id, name, types, out)
    if value_type is None:
        return {}
    if op in _ORDERED_COMPARISONS and value_type not in values.ORDERED_TYPES:
        out.errors.append(
            {
                "rule_id": rule_id,
                "fact": name,
                "message": f"{op} cannot compare {value_type} {name}",
            }
        )
        return {}
    if isinstance(operand, dict) and set(operand) == {"$m"}:
        other = operand["$m"]
        other_type = _known_type(rule_id, other, types, out)
        if other_type is None:
            return {}
        if other_type != value_type:
            out.errors.append(
                {
                    "rule_id": rule_id,
                    "fact": name,
                    "message": f"cannot compare {value_type} {name} with {other_type} {other}",
                }
            )
            return {}
        out.comparisons.append(Comparison(op, name, other=other))
        encoded: Any = {"$m": other}
    else:
        try:
            encoded = values.to_engine(value_type, values.coerce(value_type, operand))
        except ValueError as error:
            out.errors.append(
                {"rule_id": rule_id, "fact": name, "message": f"constant for {name}: {error}"}
            )
            return {}
        out.comparisons.append(Comparison(op, name, constant=encoded))
    return {name: encoded} if op == "$eq" else {op: {name: encoded}}


def _known_type(
    rule_id: str, name: Any, types: dict[str, str], out: CompiledCondition
) -> str | None:
    value_type = types.get(name) if isinstance(name, str) else None
    if value_type is None:
        out.errors.append(
            {"rule_id": rule_id, "fact": name, "message": f"unknown fact {name!r} in condition"}
        )
    elif value_type == "date_list":
        out.errors.append(
            {"rule_id": rule_id, "fact": name, "message": f"{name} cannot be used in a condition"}
        )
        return None
    return value_type


def referenced_names(engine_condition: Mapping[str, Any]) -> set[str]:
    """Every fact and parameter name an encoded condition reads."""
    names: set[str] = set()
    for op, body in engine_condition.items():
        if op in _COMBINATORS:
            for child in body:
                names |= referenced_names(child)
            continue
        # A comparison is {op: {name: operand}}; an equality is {name: operand}.
        ((name, operand),) = body.items() if op in _COMPARISONS else ((op, body),)
        names.add(name)
        if isinstance(operand, dict):
            names.add(operand["$m"])
    return names


def limit_errors(comparisons: list[Comparison]) -> list[dict[str, Any]]:
    """Check the measured per-field engine limits over all rules of a ruleset."""
    constants: dict[str, set[tuple[str, Any]]] = defaultdict(set)
    fact_to_fact: dict[str, int] = defaultdict(int)
    for comparison in comparisons:
        if comparison.other is None:
            constants[comparison.field].add((comparison.op, comparison.constant))
        else:
            # The engine does not share nodes between fact-to-fact comparisons: count each.
            fact_to_fact[comparison.field] += 1
    errors = []
    for name in sorted(set(constants) | set(fact_to_fact)):
        distinct = len(constants[name]) + fact_to_fact[name]
        if distinct > MAX_DISTINCT_PER_FIELD:
            errors.append(
                {
                    "field": name,
                    "message": f"{distinct} distinct conditions on {name}; "
                    f"the engine allows at most {MAX_DISTINCT_PER_FIELD}",
                }
            )
            continue
        matched = _most_matched(constants[name]) + fact_to_fact[name]
        if matched > MAX_MATCHED_PER_FIELD:
            errors.append(
                {
                    "field": name,
                    "message": f"one value of {name} can match {matched} conditions; "
                    f"the engine allows at most {MAX_MATCHED_PER_FIELD}",
                }
            )
    return errors


def _most_matched(constants: set[tuple[str, Any]]) -> int:
    """Largest number of constant comparisons on one field that one value satisfies."""
    numbers = [c for _, c in constants if isinstance(c, int) and not isinstance(c, bool)]
    probes: list[Any] = [n + d for n in numbers for d in (-1, 0, 1)]
    probes += [c for _, c in constants if not isinstance(c, int) or isinstance(c, bool)]
    probes.append(object())  # a value equal to no constant
    return max(sum(_holds(op, probe, c) for op, c in constants) for probe in probes)


def _holds(op: str, probe: Any, constant: Any) -> bool:
    if op == "$eq":
        return probe == constant
    if op == "$neq":
        return probe != constant
    if not isinstance(probe, int):
        return False
    return {
        "$gt": probe > constant,
        "$gte": probe >= constant,
        "$lt": probe < constant,
        "$lte": probe <= constant,
    }[op]


_COMPILE_SCRIPT = (
    "import sys, durable_rules_engine as e; e.create_ruleset('probe', sys.stdin.read())"
)


def compile_in_subprocess(
    definition: dict[str, Any], timeout: float = COMPILE_TIMEOUT_SECONDS
) -> str | None:
    """Compile an engine definition in a child process; return an error message or None.

    A child process because a ruleset over the limits hangs `create_ruleset` for good, and a hung
    call inside the server would hold the host lock.
    """
    try:
        result = subprocess.run(
            [sys.executable, "-c", _COMPILE_SCRIPT],
            input=json.dumps(definition),
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"the engine did not compile the ruleset within {timeout:g} s (too many conditions)"
    if result.returncode != 0:
        lines = result.stderr.strip().splitlines()
        return f"the engine rejected the ruleset: {lines[-1] if lines else result.returncode}"
    return None
