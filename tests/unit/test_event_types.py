"""The list of events a webhook may subscribe to is the list of events the code emits."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from engine.events import ENGINE_EVENTS, model_events

ROOT = Path(__file__).resolve().parents[2]
# The calls that queue an outbox row, each given its event's name as a literal (or a module
# constant, as engine/rescore.py's EVENT).
EMITTERS = {"emit", "_emit", "notify", "task_event", "outbox_row", "OutboxMessage"}
EMITTERS |= {"_withdraw_invoice"}  # p2p: reverses an invoice and emits the event it is given
EVENT_NAME = re.compile(r"[a-z_]+\.[a-z_]+")


def emitted_events() -> set[str]:
    found: set[str] = set()
    for package in ("api", "domain", "engine", "rules"):
        for path in (ROOT / package).rglob("*.py"):
            tree = ast.parse(path.read_text("utf-8"))
            constants = {
                target.id: node.value.value
                for node in tree.body
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                for target in node.targets
                if isinstance(target, ast.Name)
            }
            for node in ast.walk(tree):
                if isinstance(node, ast.Call) and _name(node.func) in EMITTERS:
                    for arg in [*node.args, *(keyword.value for keyword in node.keywords)]:
                        value = _literal(arg, constants)
                        if isinstance(value, str) and EVENT_NAME.fullmatch(value):
                            found.add(value)
    return found


def _name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Attribute):
        return func.attr
    return func.id if isinstance(func, ast.Name) else None


def _literal(arg: ast.expr, constants: dict[str, object]) -> object:
    if isinstance(arg, ast.Constant):
        return arg.value
    return constants.get(arg.id) if isinstance(arg, ast.Name) else None


def test_every_event_the_engine_emits_is_listed_and_every_listed_one_is_emitted():
    assert emitted_events() == ENGINE_EVENTS


def test_a_models_publish_task_sends_its_event_property_or_else_its_id():
    elements = {
        "notify_sales": {"type": "serviceTask", "topic": "outbox.publish"},
        "notify_erp": {
            "type": "serviceTask",
            "topic": "outbox.publish",
            "properties": {"event": "order.confirmed"},
        },
        "lookup": {"type": "serviceTask", "topic": "demo.lookup"},
    }

    assert model_events(elements) == {"notify_sales", "order.confirmed"}
