"""SpiffWorkflow integration: the script environment, the script engine, `${…}` expressions."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from SpiffWorkflow.bpmn.exceptions import WorkflowTaskException
from SpiffWorkflow.bpmn.script_engine import PythonScriptEngine
from SpiffWorkflow.bpmn.script_engine.python_environment import BasePythonScriptEngineEnvironment
from SpiffWorkflow.exceptions import SpiffWorkflowException

from engine.sandbox.errors import SandboxViolation
from engine.sandbox.guards import Runtime
from engine.sandbox.limits import SandboxLimits
from engine.sandbox.policy import check_source
from engine.sandbox.rewrite import compile_checked

# What the instance serializer can store: JSON plus the converters SpiffWorkflow
# registers (datetime, timedelta) and the engine adds (Decimal, date).
_STORABLE_SCALARS = (type(None), bool, int, float, str, Decimal, date, timedelta)


class SandboxEnvironment(BasePythonScriptEngineEnvironment):
    """Evaluate conditions and run scripts from BPMN models under the sandbox policy.

    Semantics follow SpiffWorkflow's TaskDataEnvironment: task data is the
    namespace; `evaluate` returns the value; `execute` writes new and changed
    variables back into task data and drops callables. Unlike Spiff, nothing is
    written back when a script fails, and values the instance serializer cannot
    store are refused with the variable's name.
    """

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        environment_globals: Mapping[str, Any] | None = None,
    ) -> None:
        # environment_globals are trusted helpers wired in by the composition root.
        super().__init__(dict(environment_globals or {}))
        self.limits = limits or SandboxLimits()

    def evaluate(
        self,
        expression: str,
        context: dict[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> Any:
        code = compile_checked(expression, "eval")
        namespace = self._namespace(context, external_context)
        return eval(code, namespace)

    def execute(
        self,
        script: str,
        context: dict[str, Any],
        external_context: Mapping[str, Any] | None = None,
    ) -> bool:
        code = compile_checked(script, "exec")
        external = dict(external_context or {})
        shadowed = (set(self.globals) | set(external)) & set(context)
        if shadowed:
            raise SandboxViolation(
                "task data overwrites predefined names; rename these variables: "
                + ", ".join(sorted(shadowed))
            )
        namespace = self._namespace(context, external)
        exec(code, namespace)
        self._write_back(namespace, context, reserved=set(self.globals) | set(external))
        return True

    def call_service(self, context: dict[str, Any], **kwargs: Any) -> Any:
        # Service tasks bind by topic in engine/services, never through scripts.
        raise SandboxViolation("service calls are not available to scripts")

    def _namespace(
        self, context: Mapping[str, Any], external_context: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        namespace = {**self.globals, **(external_context or {}), **context}
        # Helpers last: task data (say, an ERP payload) must not replace them.
        namespace.update(Runtime(self.limits).namespace())
        return namespace

    def _write_back(
        self, namespace: dict[str, Any], context: dict[str, Any], reserved: set[str]
    ) -> None:
        helpers = Runtime.helper_names()
        for name in [n for n in context if n not in namespace]:
            del context[name]  # the script said `del name`
        for name, value in namespace.items():
            if name in helpers or name in reserved:
                continue
            if callable(value):
                context.pop(name, None)  # as Spiff does: lambdas and classes are not data
            elif name not in context or context[name] is not value:
                _check_storable(name, value, self.limits.max_sequence_length)
                context[name] = value


def _check_storable(name: str, value: Any, budget: int) -> None:
    pending = [value]
    seen = 0
    while pending and seen <= budget:
        item = pending.pop()
        seen += 1
        if isinstance(item, _STORABLE_SCALARS):
            continue
        if isinstance(item, list | tuple):
            pending.extend(item)
        elif isinstance(item, dict) and all(isinstance(k, str) for k in item):
            pending.extend(item.values())
        else:
            kind = "dict with non-string keys" if isinstance(item, dict) else type(item).__name__
            raise SandboxViolation(
                f"variable '{name}' holds a {kind}; task data can hold only JSON-like "
                "values, Decimal, date, datetime and timedelta"
            )


class SandboxScriptEngine(PythonScriptEngine):
    """PythonScriptEngine that keeps the original error text in every wrapped exception."""

    def validate(self, expression: str) -> None:
        super().validate(expression)  # a SyntaxError must stay one: the DMN engine relies on it
        messages = check_source(expression, "exec")
        if messages:
            raise SandboxViolation("script refused: " + "; ".join(messages), messages)

    def evaluate(
        self, task: Any, expression: str, external_context: Mapping[str, Any] | None = None
    ) -> Any:
        try:
            return self.environment.evaluate(expression, task.data, external_context)
        except SpiffWorkflowException as err:
            err.add_note(f"Error evaluating expression '{expression}'")
            raise
        except Exception as err:
            # Spiff's own message drops err's text; an incident needs it.
            raise WorkflowTaskException(
                f"Error evaluating expression '{expression}': {_describe(err)}",
                task=task,
                exception=err,
            ) from err

    def create_task_exec_exception(
        self, task: Any, script: str, err: Exception
    ) -> SpiffWorkflowException:
        if isinstance(err, SpiffWorkflowException):
            return super().create_task_exec_exception(task, script, err)
        # Spiff concatenates err.args[0], which fails for KeyError(5) and the like.
        line_number, error_line = self.get_error_line_number_and_content(script, err)
        return WorkflowTaskException(
            _describe(err),
            task=task,
            exception=err,
            line_number=line_number,
            error_line=error_line,
        )


def _describe(err: BaseException) -> str:
    return f"{err.__class__.__name__}: {err}"


def make_script_engine(
    limits: SandboxLimits | None = None,
    environment_globals: Mapping[str, Any] | None = None,
) -> PythonScriptEngine:
    """The script engine every BpmnWorkflow in flowgate is built with."""
    return SandboxScriptEngine(environment=SandboxEnvironment(limits, environment_globals))


def evaluate_expression(
    text: str, variables: Mapping[str, Any], limits: SandboxLimits | None = None
) -> Any:
    """Evaluate the inside of a Camunda `${…}` expression (assignee, due date, …).

    Dict entries read as attributes, as in JUEL: `order.region` is
    `order['region']`. A key wins over a method of the same name.
    """
    code = compile_checked(text, "eval", mapping_attributes=True)
    namespace = {**variables, **Runtime(limits or SandboxLimits()).namespace()}
    return eval(code, namespace)
