"""Every lookup the order-to-cash and procure-to-pay paths make is answered from an index.

A lookup that reads a whole table (every invoice, every shipped unit) or every open task costs
more with each order a customer ever placed: the service slows as its history grows, the
opposite of what the engine's load-time target asks. SQLite shows its plan for each statement
(EXPLAIN QUERY PLAN), and without ANALYZE statistics it picks by index shape alone, so a plan
that scans here would scan in every embedded installation. SQLite only: PostgreSQL plans by
cost, and on a test's few rows it rightly reads whole tables.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, event

from tests.integration import o2c_support, p2p_support, test_o2c_paths, test_p2p_paths
from tests.integration.conftest import sqlite_container

REPO = Path(__file__).resolve().parents[2]
# A status alone narrows nothing: most rows of these tables share one of a few values.
_STATUS_ONLY = re.compile(r"USING (?:COVERING )?INDEX \w+ \(status=\?\)")


@contextmanager
def plans_of_statements(engine: Engine) -> Iterator[dict[str, list[str]]]:
    """The query plan of each distinct SELECT, UPDATE and DELETE run on `engine` meanwhile."""
    plans: dict[str, list[str]] = {}

    def explain(conn: Any, cursor: Any, statement: str, parameters: Any, _ctx: Any, many: bool):
        verb = statement.lstrip().split(None, 1)[0].upper()
        if verb not in ("SELECT", "UPDATE", "DELETE") or statement in plans or _from_a_test():
            return
        params = parameters[0] if many else parameters
        rows = cursor.connection.execute(f"EXPLAIN QUERY PLAN {statement}", params).fetchall()
        plans[statement] = [row[3] for row in rows]

    event.listen(engine, "before_cursor_execute", explain)
    try:
        yield plans
    finally:
        event.remove(engine, "before_cursor_execute", explain)


def _from_a_test() -> bool:
    """Whether the innermost of our own frames is test code (a test reading its outcome)."""
    frame = sys._getframe(2)
    while frame is not None:
        name = frame.f_code.co_filename
        if name.startswith(str(REPO)) and "site-packages" not in name:
            return name.startswith(str(REPO / "tests"))
        frame = frame.f_back
    return True


def whole_reads(plans: dict[str, list[str]]) -> list[str]:
    offenders = []
    for statement, plan in plans.items():
        for step in plan:
            scans_table = step.startswith("SCAN ") and " USING " not in step
            if scans_table or _STATUS_ONLY.search(step):
                offenders.append(f"{step}: {' '.join(statement.split())[:300]}")
    return offenders


def test_order_to_cash_and_procure_to_pay_read_no_table_whole(tmp_path: Path) -> None:
    # Each on its own database: both paths' helpers create the same ERP key.
    with (
        sqlite_container(tmp_path / "o2c") as container,
        plans_of_statements(container.engine) as o2c_plans,
    ):
        o2c = o2c_support.make_api(container)
        test_o2c_paths.test_auto_release_ship_invoice_pay_in_two_parts_close(o2c)
        test_o2c_paths.test_over_limit_is_held_until_the_credit_manager_approves_then_ships(o2c)
    with (
        sqlite_container(tmp_path / "p2p") as container,
        plans_of_statements(container.engine) as p2p_plans,
    ):
        p2p = p2p_support.make_api(container)
        p2p.supplier()
        test_p2p_paths.test_requisition_under_ten_thousand_is_auto_approved_and_paid_on_the_discount_date(
            p2p
        )

    plans = o2c_plans | p2p_plans
    assert len(o2c_plans) > 50 and len(p2p_plans) > 50  # the paths ran, through every handler
    assert whole_reads(plans) == []


def test_a_status_only_or_unindexed_lookup_is_reported(tmp_path: Path) -> None:
    """The check above can fail: a lookup of open tasks by element reads every open task."""
    with sqlite_container(tmp_path / "db") as container:
        plans = {}
        with container.engine.connect() as conn:
            for statement in (
                "SELECT id FROM human_task WHERE status = 'open' AND element_id = 'approve'",
                "SELECT gross FROM invoice WHERE net = '1.00'",
            ):
                rows = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}").fetchall()
                plans[statement] = [row[3] for row in rows]

    assert len(whole_reads(plans)) == 2
