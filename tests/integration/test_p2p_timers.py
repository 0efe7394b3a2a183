"""Procure-to-pay timers: an idle approval escalates per the `escalation` ruleset on the
injected clock, and payment waits for the day the discount decision picked."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from engine.scheduler import sweep_timers
from tests.integration.p2p_support import make_api

LINE = {"line_no": 1, "sku": "SKU-1", "gtin": "06901234567892", "unit_price": "35.00"}


def test_idle_approval_escalates_to_the_next_tier(container):
    api = make_api(container, start=datetime.now(UTC))
    api.supplier()
    api.start("PR-8001", [{**LINE, "qty": 1000}], approval_escalation_cycle="R3/PT0.1S")
    task = api.task("approve_requisition")
    assert task["candidate_groups"] == ["dept_manager"]
    assert api.complete("approve_requisition", "frank", decision="approve").status_code == 403

    api.clock.advance(days=7)  # five business days against an SLA of two: twice the SLA
    time.sleep(0.15)
    assert sweep_timers(api.container.runtime) == 1

    escalation = [d for d in api.decisions() if d["ruleset_key"] == "escalation"]
    # A slow sweep may see the cycle due twice; the ladder only climbs once per level.
    assert escalation[0]["outcome"] == "hold"
    assert {d["outcome"] for d in escalation[1:]} <= {"pass"}
    [escalated] = api.payloads("approval.escalated")
    assert escalated["to"] == "finance_director" and escalated["task_id"] == task["id"]
    assert "approval.reminded" in api.event_types()
    assert api.task("approve_requisition")["candidate_groups"] == [
        "dept_manager",
        "finance_director",
    ]
    api.done("approve_requisition", "frank", decision="approve")
    assert "po.issued" in api.event_types()


def test_payment_waits_for_the_discount_date(container):
    api = make_api(container, start=datetime.now(UTC))
    api.supplier()
    api.start("PR-8002", [{**LINE, "qty": 100}])
    api.receive("GR-1", (1, "L1", 100, api.today + timedelta(days=900)))
    api.done("incoming_inspection", "quinn", result="pass")
    api.invoice("INV-8002", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")

    [waiting] = api.instance()["waiting_for"]
    assert waiting["element_id"] == "wait_pay_date"
    assert waiting["due_at"].startswith((api.today + timedelta(days=10)).isoformat())
    assert sweep_timers(api.container.runtime) == 0
    assert "payment.requested" not in api.event_types()
    [schedule] = [d for d in api.decisions() if d["ruleset_key"] == "payment_discount"]
    assert schedule["record"]["fired"][0]["rule_id"] == "pay_on_discount_date"
