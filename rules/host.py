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

The stock action loop (`Ruleset._flush_actions`) was about a third of a decision's time: per
fired rule a `Closure`, `json.loads` of the whole fact and the session state, and a `json.dumps`
for `update_state`. Our actions only record which rule fired and never change the session state,
so the host drives the engine's own action queue directly (`start_action_for_state` /
`complete_and_start_action`): the engine still matches every condition and schedules every
action; only the Python bookkeeping around it is skipped. As the host calls the actions itself,
an action's exception reaches it directly instead of through `state['exception']`.
"""

from __future__ import annotations

import collections
import copy
import hashlib
import itertools
import json
import threading
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType
from typing import Any

import durable_rules_engine
from durable import engine

from rules.errors import RuleEvaluationFailed

CATCH_ALL = "_evaluated"
_CATCH_ALL_RULE = {"all": [{"m": {CATCH_ALL: 1}}]}
# assert_fact result codes (durable rules.h): handled, and matched no rule at all.
_HANDLED, _NOT_HANDLED = 0, 1

# An action gets the list of rule ids fired so far in its evaluation (one parameter, DESIGN §3).
Action = Callable[[list[str]], None]


class _TurnLock:
    """A lock handed to waiting threads in arrival order.

    With a plain lock the thread holding the GIL releases the engine and takes it straight back
    for its next evaluation, so the others wait until the interpreter forces a switch (5 ms
    slices): measured p99 of 20-30 ms with 8 threads. Handing the lock over in turn makes each
    wait about (threads ahead) x (one evaluation).
    """

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._held = False
        self._waiting: collections.deque[threading.Lock] = collections.deque()

    def __enter__(self) -> None:
        with self._guard:
            if not self._held:
                self._held = True
                return
            turn = threading.Lock()
            turn.acquire()
            self._waiting.append(turn)
        turn.acquire()  # released by the holder's __exit__, which hands the lock over

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        with self._guard:
            if self._waiting:
                self._waiting.popleft().release()
            else:
                self._held = False


class _ThreadlessHost(engine.Host):
    def _run(self) -> None:
        """Start no dispatch or timer threads: flowgate uses no durable timers or queues."""

    def run_session(
        self, ruleset_name: str, sid: str, fact_json: str, actions: Mapping[str, Action]
    ) -> list[str]:
        """Assert one fact in session `sid`, run in engine order the action of every rule it
        fired, and delete the session; return the fired rule names.

        Raises MessageNotHandledException if no rule matched, leaving that session alone, and
        whatever an action raises, after abandoning that action.
        """
        handle = self.get_ruleset(ruleset_name)._handle
        delete = True
        try:
            code, state_offset = durable_rules_engine.assert_fact(handle, fact_json)
            if code == _NOT_HANDLED:
                delete = False  # deleting this session would corrupt the heap
                raise engine.MessageNotHandledException(fact_json)
            if code != _HANDLED:
                raise RuntimeError(f"engine result code {code}")
            fired: list[str] = []
            started = durable_rules_engine.start_action_for_state(handle, state_offset)
            message = started[1] if started else None
            while message:
                try:
                    # The engine writes '{"<rule name>":{"m":<fact>}}'; rule names are
                    # identifiers, so slicing finds the name without parsing the fact back.
                    actions[message[2 : message.index('"', 2)]](fired)
                except BaseException:
                    durable_rules_engine.abandon_action(handle, state_offset)
                    raise
                message = durable_rules_engine.complete_and_start_action(handle, state_offset)
            return fired
        finally:
            if delete:
                durable_rules_engine.delete_state(handle, sid)


class RulesHost:
    """Registers versioned rulesets and returns the ids of every rule a fact fires."""

    def __init__(self) -> None:
        self._lock = _TurnLock()
        self._engine = _ThreadlessHost()
        self._digests: dict[str, str] = {}
        self._actions: dict[str, dict[str, Action]] = {}
        self._sids = itertools.count(1)

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
                    actions = {rule_id: self._action(rule_id) for rule_id in rules}
                    for rule_id, rule in rules.items():
                        rule["run"] = actions[rule_id]
                    self._engine.register_rulesets({engine_name: rules})
                    self._actions[engine_name] = actions
                    self._digests[engine_name] = digest
                    return engine_name
        raise AssertionError("unreachable: a digest-suffixed name is unique per definition")

    def fire(self, engine_name: str, fact_members: Iterable[str]) -> list[str]:
        """Assert a fact in a fresh session; return the fired rule ids (engine order).

        `fact_members` are the fact's JSON members, `"name":value` (`values.engine_member`).
        """
        sid = str(next(self._sids))  # itertools.count is atomic: no lock needed
        fact_json = "{" + ",".join([f'"sid":"{sid}"', f'"{CATCH_ALL}":1', *fact_members]) + "}"

        with self._lock:
            try:
                fired = self._engine.run_session(
                    engine_name, sid, fact_json, self._actions[engine_name]
                )
            except engine.MessageNotHandledException as error:
                # One sid leaks (see the module docstring); fail closed.
                raise RuleEvaluationFailed(f"{engine_name}: catch-all did not fire") from error
            except Exception as error:
                raise RuleEvaluationFailed(f"{engine_name}: evaluation failed: {error}") from error
        if CATCH_ALL not in fired:
            # The catch-all matches every fact: without its action the loop stopped early.
            raise RuleEvaluationFailed(f"{engine_name}: the evaluation did not complete")
        fired.remove(CATCH_ALL)
        return fired

    def _action(self, rule_id: str) -> Action:
        # Exactly one parameter: durable-rules treats a two-parameter callable as asynchronous.
        def record_firing(fired: list[str]) -> None:
            self.record_firing(fired, rule_id)

        return record_firing

    def record_firing(self, fired: list[str], rule_id: str) -> None:
        fired.append(rule_id)


_host: RulesHost | None = None
_host_lock = threading.Lock()


def get_host() -> RulesHost:
    """Return the process's one host, creating it on first use."""
    global _host
    with _host_lock:
        if _host is None:
            _host = RulesHost()
        return _host
