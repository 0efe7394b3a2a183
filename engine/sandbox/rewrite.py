"""Compile checked source with the runtime guards woven in.

Rewriting the tree, rather than tracing, is what makes the limits hold:
CPython 3.11 emits no line events for a one-line loop such as `while True: pass`,
so a sys.settrace budget never fires there, and C-level operators such as
`'a' * 10**10` run to completion before any trace hook could intervene.
"""

from __future__ import annotations

import ast
from functools import lru_cache
from types import CodeType

from engine.sandbox.errors import SandboxViolation
from engine.sandbox.policy import Mode, parse_checked

# Helper names start with '_' so that checked source can never refer to them.
TICK = "__sb_tick__"
GETATTR = "__sb_getattr__"
GETATTR_OR_KEY = "__sb_getattr_or_key__"
RENDER = "__sb_render__"
BINOP = "__sb_binop__"
AUGMENT = "__sb_augment__"
AUGMENT_ITEM = "__sb_augment_item__"
# Only the operators that can build a huge result from small operands are guarded.
OPERATOR_SYMBOLS: dict[type[ast.operator], str] = {
    ast.Add: "+",
    ast.Mult: "*",
    ast.Pow: "**",
    ast.LShift: "<<",
    ast.Mod: "%",
}
# The file name SpiffWorkflow looks for in tracebacks to report the failing line.
FILENAME = "<string>"


def compile_checked(text: str, mode: Mode, *, mapping_attributes: bool = False) -> CodeType:
    """Check and compile, raising SandboxViolation with every policy message."""
    compiled = _compile_cached(text, mode, mapping_attributes)
    if isinstance(compiled, tuple):
        raise SandboxViolation("script refused: " + "; ".join(compiled), list(compiled))
    return compiled


@lru_cache(maxsize=4096)
def _compile_cached(text: str, mode: Mode, mapping_attributes: bool) -> CodeType | tuple[str, ...]:
    # Policy failures are cached as message tuples because lru_cache cannot
    # cache a raised exception, and a bad model is evaluated again and again.
    tree, messages = parse_checked(text, mode)
    if tree is None:
        return tuple(messages)
    guarded = _GuardWeaver(mapping_attributes).visit(tree)
    ast.fix_missing_locations(guarded)
    return compile(guarded, FILENAME, mode)


def _call(helper: str, args: list[ast.expr], at: ast.AST) -> ast.Call:
    call = ast.Call(func=ast.Name(id=helper, ctx=ast.Load()), args=args, keywords=[])
    return ast.copy_location(call, at)


class _GuardWeaver(ast.NodeTransformer):
    def __init__(self, mapping_attributes: bool) -> None:
        # `${order.region}`: Camunda expressions read map entries as properties.
        self.getattr_helper = GETATTR_OR_KEY if mapping_attributes else GETATTR

    def visit_BinOp(self, node: ast.BinOp) -> ast.expr:
        self.generic_visit(node)
        symbol = OPERATOR_SYMBOLS.get(type(node.op))
        if symbol is None:
            return node
        return _call(BINOP, [ast.Constant(value=symbol), node.left, node.right], node)

    def visit_AugAssign(self, node: ast.AugAssign) -> ast.stmt:
        self.generic_visit(node)
        symbol = OPERATOR_SYMBOLS.get(type(node.op))
        if symbol is None:
            return node
        op = ast.Constant(value=symbol)
        target = node.target
        if isinstance(target, ast.Name):
            current = ast.Name(id=target.id, ctx=ast.Load())
            value = _call(AUGMENT, [op, current, node.value], node)
            return ast.copy_location(ast.Assign(targets=[target], value=value), node)
        if isinstance(target, ast.Subscript):
            # One helper call keeps Python's evaluate-once order for d[k] += v.
            args = [target.value, target.slice, op, node.value]
            return ast.copy_location(ast.Expr(value=_call(AUGMENT_ITEM, args, node)), node)
        return node  # attribute targets are refused by the policy

    def visit_Attribute(self, node: ast.Attribute) -> ast.expr:
        self.generic_visit(node)
        if not isinstance(node.ctx, ast.Load):
            return node
        return _call(self.getattr_helper, [node.value, ast.Constant(value=node.attr)], node)

    def visit_FormattedValue(self, node: ast.FormattedValue) -> ast.FormattedValue:
        self.generic_visit(node)
        node.value = _call(RENDER, [node.value], node.value)
        return node

    def _tick_loop(self, node: ast.While | ast.For) -> ast.stmt:
        self.generic_visit(node)
        node.body.insert(0, ast.copy_location(ast.Expr(value=_call(TICK, [], node)), node))
        return node

    visit_While = _tick_loop
    visit_For = _tick_loop

    def visit_comprehension(self, node: ast.comprehension) -> ast.comprehension:
        self.generic_visit(node)
        node.ifs.insert(0, _call(TICK, [], node.iter))  # the tick returns True
        return node

    def visit_Lambda(self, node: ast.Lambda) -> ast.expr:
        # Recursion through lambdas (f = lambda n: f(n-1) + f(n-1)) has no loop to count.
        self.generic_visit(node)
        node.body = ast.copy_location(
            ast.BoolOp(op=ast.And(), values=[_call(TICK, [], node), node.body]), node.body
        )
        return node
