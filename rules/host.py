"""The one safe durable-rules host of a process (DESIGN §3).

Measured on durable-rules 2.0.28: the stock host runs timer threads and segfaults under
concurrent requests; `post` fires only one rule; an exception inside an action is swallowed into
`state['exception']`; a callable with two parameters is taken as asynchronous; a ruleset name
cannot be registered twice; at most 1,024 sids may be live per ruleset. Hence: no threads, one
lock around every engine call, a fresh sid per evaluation deleted in `finally`, `assert_fact`,
one-parameter actions, and fail closed on any engine or action error.

Also measured here: `delete_state` after an `assert_fact` that no rule handled corrupts the heap
(segfault or `free(): invalid pointer`, depending on what else the process imported). So every
ruleset gets a catch-all rule that always fires, and its firing is not reported.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Mapping
from typing import Any

from durable import engine

from rules.errors import RuleEvaluationFailed

CATCH_ALL = "_evaluated"
_CATCH_ALL_RULE = {"all": [{"m": {CATCH_ALL: 1}}]}


class _ThreadlessHost(engine.Host):
    def _run(self) -> None:
        """Start no dispatch or timer threads: flowgate uses no durable timers or queues."""


class RulesHost:
    """Registers versioned rulesets and returns the ids of every rule a fact fires."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._engine = _ThreadlessHost()
        self._digests: dict[str, str] = {}
        self._sids = itertools.count(1)
        self._fired: dict[str, list[str]] = {}

    def register(self, name: str, definition: Mapping[str, Any]) -> str:
        """Register `definition` (rules without actions) as `name`; return the engine name.

        Registering the same definition again is a no-op. A different definition under a name
        already taken (an unpublished candidate, or another store in the same test process) gets
        the name suffixed with its digest, because the engine never forgets a name.
        """
        digest = hashlib.sha256(json.dumps(definition, sort_keys=True).encode()).hexdigest()[:16]
        with self._lock:
            for engine_name in (name, f"{name}#{digest}"):
                known = self._digests.get(engine_name)
                if known == digest:
                    return engine_name
                if known is None:
                    rules = copy.deepcopy(dict(definition))
                    rules[CATCH_ALL] = copy.deepcopy(_CATCH_ALL_RULE)
                    for rule_id, rule in rules.items():
                        rule["run"] = self._action(rule_id)
                    self._engine.register_rulesets({engine_name: rules})
                    self._digests[engine_name] = digest
                    return engine_name
        raise AssertionError("unreachable: a digest-suffixed name is unique per definition")

    def fire(self, engine_name: str, fact: Mapping[str, Any]) -> list[str]:
        """Assert `fact` in a fresh session; return the fired rule ids (engine order)."""
        with self._lock:
            sid = str(next(self._sids))
            fired: list[str] = []
            self._fired[sid] = fired
            session_safe_to_delete = True
            try:
                state = self._engine.assert_fact(engine_name, {**fact, "sid": sid, CATCH_ALL: 1})
            except engine.MessageNotHandledException as error:
                # Deleting this session would corrupt the heap: leak one sid and fail closed.
                session_safe_to_delete = False
                raise RuleEvaluationFailed(f"{engine_name}: catch-all did not fire") from error
            except Exception as error:
                raise RuleEvaluationFailed(f"{engine_name}: engine error: {error}") from error
            finally:
                del self._fired[sid]
                if session_safe_to_delete:
                    self._delete_state(engine_name, sid)
            if not isinstance(state, dict) or state.get("exception"):
                failure = state.get("exception") if isinstance(state, dict) else "no state"
                raise RuleEvaluationFailed(f"{engine_name}: an action failed: {failure}")
            return [rule_id for rule_id in fired if rule_id != CATCH_ALL]

    def _delete_state(self, engine_name: str, sid: str) -> None:
        try:
            self._engine.delete_state(engine_name, sid)
        except Exception as error:
            raise RuleEvaluationFailed(f"{engine_name}: could not delete session {sid}") from error

    def _action(self, rule_id: str) -> Callable[[Any], None]:
        # Exactly one parameter: durable-rules treats a two-parameter callable as asynchronous.
        def record_firing(closure: Any) -> None:
            self.record_firing(closure.s.sid, rule_id)

        return record_firing

    def record_firing(self, sid: str, rule_id: str) -> None:
        self._fired[sid].append(rule_id)


_host: RulesHost | None = None
_host_lock = threading.Lock()


def get_host() -> RulesHost:
    """Return the process's one host, creating it on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = RulesHost()
        return _host
