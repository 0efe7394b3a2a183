"""The restricted evaluator for BPMN scripts, conditions and expressions (DESIGN §2).

Scripts in uploaded models are untrusted. Three layers keep them in bounds:

1. `policy`: a deploy-time and run-time check of the syntax tree (no imports,
   no names or attributes starting with '_', no introspection, no def/class).
2. `rewrite`: the checked tree is compiled with guards woven in: a step and
   time budget in every loop, comprehension and lambda; size-checked `+ * ** << %`;
   attribute reads through an allow list.
3. `guards`: a builtins allow list with bounded `range`, `sum`, `zip`, `str`.

Limits: the step budget and the deadline are checked in Python code only, and
the memory check reads /proc (Linux) every 10 ms of script time. A single C-level
call on inputs already at the caps (sorting a few hundred 100,000-item lists,
say) runs to completion before any check; for hard isolation, evaluate in a
worker process with RLIMIT_AS and RLIMIT_CPU.
"""

from engine.sandbox.environment import (
    SandboxEnvironment,
    SandboxScriptEngine,
    evaluate_expression,
    make_script_engine,
)
from engine.sandbox.errors import SandboxViolation
from engine.sandbox.limits import SandboxLimits
from engine.sandbox.policy import check_source

__all__ = [
    "SandboxEnvironment",
    "SandboxLimits",
    "SandboxScriptEngine",
    "SandboxViolation",
    "check_source",
    "evaluate_expression",
    "make_script_engine",
]
