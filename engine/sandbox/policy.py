"""The static policy: which Python an analyst may put into a BPMN model.

The check runs at deploy time (`check_source`) and again, cached, before every
evaluation. It is a deny list over the syntax tree; the runtime guards in
`guards.py` are the second line (attribute allow list, bounded operations).
"""

from __future__ import annotations

import ast
import re
from typing import Literal

Mode = Literal["eval", "exec"]

# A script longer than this belongs in a service task with reviewed code.
MAX_SOURCE_LENGTH = 20_000
# Mirrors SandboxLimits.max_format_width; literal specs are checked statically.
MAX_FORMAT_WIDTH = 1_000

# Builtins that reach the interpreter, the file system or object internals.
# None of them exists inside the sandbox; refusing the names up front gives the
# analyst a deploy-time message instead of a NameError in production. The price
# is that task variables cannot be called e.g. `type` or `input`.
FORBIDDEN_NAMES = frozenset(
    {
        "__import__",
        "breakpoint",
        "bytearray",
        "bytes",
        "callable",
        "classmethod",
        "compile",
        "delattr",
        "dir",
        "eval",
        "exec",
        "exit",
        "getattr",
        "globals",
        "hasattr",
        "help",
        "id",
        "input",
        "iter",
        "locals",
        "memoryview",
        "next",
        "object",
        "open",
        "print",
        "property",
        "quit",
        "repr",
        "setattr",
        "staticmethod",
        "super",
        "type",
        "vars",
    }
)

# `str.format` walks attributes inside the format string ("{0.__class__}"), so
# no attribute called format may be touched at all. `mro` lists base classes.
FORBIDDEN_ATTRIBUTES = frozenset({"format", "format_map", "mro"})
# Generator, coroutine, frame, traceback, code and function internals lead to
# frames and from there to real globals and builtins.
FORBIDDEN_ATTRIBUTE_PREFIXES = ("_", "gi_", "cr_", "ag_", "f_", "tb_", "co_", "func_")

_FORBIDDEN_STATEMENTS: dict[type[ast.AST], str] = {
    ast.Import: "import is not allowed",
    ast.ImportFrom: "import is not allowed",
    ast.ClassDef: "class definitions are not allowed",
    # A lambda covers sort keys; named functions would add defaults, decorators
    # and annotations to the attack surface for little gain in a BPMN script.
    ast.FunctionDef: "def is not allowed (use a lambda for a sort key)",
    ast.AsyncFunctionDef: "async code is not allowed",
    ast.AsyncFor: "async code is not allowed",
    ast.AsyncWith: "async code is not allowed",
    ast.Await: "async code is not allowed",
    ast.Global: "global is not allowed",
    ast.Nonlocal: "nonlocal is not allowed",
    ast.Yield: "yield is not allowed",
    ast.YieldFrom: "yield is not allowed",
    ast.With: "with is not allowed",
    # try/except could swallow the limit violations and keep a loop running.
    ast.Try: "try/except is not allowed",
    ast.TryStar: "try/except is not allowed",
    # No exception classes are available, so raise could only fail confusingly;
    # use `assert condition, "message"` to stop a script with a reason.
    ast.Raise: "raise is not allowed (use assert condition, 'message')",
    # Class patterns look up attributes by name, around the attribute guard.
    ast.Match: "match is not allowed",
}

_DIGITS = re.compile(r"\d+")


def check_source(text: str, mode: Mode) -> list[str]:
    """Return the policy violations in a script (`exec`) or expression (`eval`); empty is ok."""
    _tree, messages = parse_checked(text, mode)
    return messages


def parse_checked(text: str, mode: Mode) -> tuple[ast.AST | None, list[str]]:
    """Parse and check; the tree is only returned when there are no violations."""
    if len(text) > MAX_SOURCE_LENGTH:
        return None, [f"source is {len(text):,} characters; the limit is {MAX_SOURCE_LENGTH:,}"]
    try:
        tree = ast.parse(prepare_source(text, mode), mode=mode)
    except SyntaxError as err:
        return None, [f"line {err.lineno or 0}: syntax error: {err.msg}"]
    except (ValueError, RecursionError, MemoryError) as err:
        # ValueError: NUL bytes; the other two: absurdly nested expressions.
        return None, [f"cannot parse: {err.__class__.__name__}"]
    messages = _PolicyVisitor().check(tree)
    return (None, messages) if messages else (tree, [])


def prepare_source(text: str, mode: Mode) -> str:
    """Expressions from BPMN XML often carry surrounding whitespace; eval() tolerates it."""
    return text.strip() if mode == "eval" else text


class _PolicyVisitor(ast.NodeVisitor):
    def __init__(self) -> None:
        self.found: list[tuple[int, str]] = []

    def check(self, tree: ast.AST) -> list[str]:
        self.visit(tree)
        unique = sorted(set(self.found))
        return [f"line {line}: {message}" for line, message in unique]

    def refuse(self, node: ast.AST, message: str) -> None:
        self.found.append((getattr(node, "lineno", 0), message))

    def generic_visit(self, node: ast.AST) -> None:
        message = _FORBIDDEN_STATEMENTS.get(type(node))
        if message is not None:
            self.refuse(node, message)
        super().generic_visit(node)

    def visit_Name(self, node: ast.Name) -> None:
        self._check_name(node, node.id)

    def visit_arg(self, node: ast.arg) -> None:
        self._check_name(node, node.arg)

    def _check_name(self, node: ast.AST, name: str) -> None:
        if name.startswith("_"):
            self.refuse(node, f"name '{name}' is not allowed (names starting with '_')")
        elif name in FORBIDDEN_NAMES:
            self.refuse(node, f"name '{name}' is not allowed")

    def visit_Attribute(self, node: ast.Attribute) -> None:
        if node.attr in FORBIDDEN_ATTRIBUTES or node.attr.startswith(FORBIDDEN_ATTRIBUTE_PREFIXES):
            self.refuse(node, f"attribute '.{node.attr}' is not allowed")
        if not isinstance(node.ctx, ast.Load):
            # Task data is plain dicts and lists; assign with d['key'] = value.
            self.refuse(node, "assigning or deleting attributes is not allowed")
        self.generic_visit(node)

    def visit_Subscript(self, node: ast.Subscript) -> None:
        if isinstance(node.slice, ast.Slice) and isinstance(node.ctx, ast.Store):
            # a[:0] = a doubles a list without any guarded operator.
            self.refuse(node, "slice assignment is not allowed (build a new list)")
        self.generic_visit(node)

    def visit_comprehension(self, node: ast.comprehension) -> None:
        if node.is_async:
            self.refuse(node.target, "async code is not allowed")
        self.generic_visit(node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> None:
        spec = node.format_spec
        if spec is not None:
            parts = spec.values if isinstance(spec, ast.JoinedStr) else [spec]
            literal = all(isinstance(p, ast.Constant) and isinstance(p.value, str) for p in parts)
            if not literal:
                # f"{x:{width}}" could ask for a gigabyte of padding at run time.
                self.refuse(node, "f-string format specs must be literal")
            else:
                text = "".join(p.value for p in parts if isinstance(p, ast.Constant))
                if any(int(d) > MAX_FORMAT_WIDTH for d in _DIGITS.findall(text)):
                    self.refuse(node, f"f-string width over {MAX_FORMAT_WIDTH:,} is not allowed")
        self.generic_visit(node)
