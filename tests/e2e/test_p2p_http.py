"""Procure to pay against the real server, as the README walks it (issue 5)."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import ROOT, Server, start_server

PO = "PO-PR-2001"


@pytest.fixture
def p2p_server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "processes").mkdir()
    shutil.copy(ROOT / "processes" / "procure_to_pay.bpmn", tmp_path / "processes")
    srv = start_server(tmp_path)
    yield srv
    srv.stop()


def ok(server: Server, method: str, path: str, body=None, token: str = "erp", **kw):
    status, answer = server.call(method, f"/api/v1{path}", body, token, **kw)
    assert status < 300, (method, path, status, answer)
    return answer


def message(server: Server, name: str, payload: dict) -> None:
    body = {"name": name, "correlation_key": PO, "payload": {"po_no": PO, **payload}}
    ok(server, "POST", "/messages", body)


def wait_for_payment_request(server: Server, instance_id: str) -> None:
    """The payment-date timer is due at once; the scheduler fires it within a tick or two."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        waiting = ok(server, "GET", f"/instances/{instance_id}", token="admin")["waiting_for"]
        if any(w.get("name") == "payment_executed" for w in waiting):
            return
        time.sleep(0.1)
    raise AssertionError(f"payment was never requested: {waiting}")


def requisition(req_no: str, requester: str, qty: int) -> dict:
    return {
        "business_key": req_no,
        "variables": {
            "requisition": {
                "req_no": req_no,
                "requester": requester,
                "cost_center": "CC-100",
                "category": "consumables",
                "supplier_id": "S001",
                "currency": "CNY",
                "lines": [
                    {
                        "line_no": 1,
                        "sku": "SKU-1",
                        "gtin": "06901234567892",
                        "qty": qty,
                        "unit_price": "35.00",
                    }
                ],
            }
        },
    }


def test_readme_walk_through_reaches_paid_with_balanced_postings(p2p_server):
    server = p2p_server
    ok(
        server,
        "PUT",
        "/suppliers/S001",
        {
            "name": "Medsupply",
            "blocked": False,
            "bank_account_trusted": True,
            "payment_terms": {"net_days": 30, "discount_pct": "2", "discount_days": 10},
        },
    )
    started = ok(
        server,
        "POST",
        "/processes/procure_to_pay/instances",
        requisition("PR-2001", "peter", 100),
        headers={"Idempotency-Key": "PR-2001"},
    )
    message(
        server,
        "goods_received",
        {
            "receipt_no": "GR-1",
            "lines": [
                {
                    "line_no": 1,
                    "qty": 100,
                    "gtin": "06901234567892",
                    "lot": "L9001",
                    "expiry_date": "2029-12-31",
                    "udi": "(01)06901234567892(17)291231(10)L9001",
                }
            ],
        },
    )
    [task] = ok(server, "GET", "/tasks?scope=mine", token="quinn")["items"]
    assert task["element_id"] == "incoming_inspection"
    ok(
        server,
        "POST",
        f"/tasks/{task['id']}/complete",
        {"variables": {"result": "pass"}},
        token="quinn",
    )
    message(
        server,
        "vendor_invoice",
        {
            "invoice_no": "INV-1",
            "invoice_date": "2026-10-01",
            "lines": [{"line_no": 1, "qty": 100, "unit_price": "35.00"}],
            "tax_amount": "455.00",
            "total": "3955.00",
            "entered_by": "amy",
        },
    )
    wait_for_payment_request(server, started["id"])
    message(
        server,
        "payment_executed",
        {"invoice_no": "INV-1", "amount": "3955.00", "paid_on": "2026-10-31"},
    )

    instance = ok(server, "GET", f"/instances/{started['id']}", token="admin")
    assert instance["status"] == "completed", instance
    entries = ok(server, "GET", f"/journal-entries?source_type=po&source_id={PO}")["items"]
    assert [e["kind"] for e in entries] == ["goods_receipt", "vendor_invoice", "vendor_payment"]
    for entry in entries:
        debit = sum(Decimal(line["debit"]) for line in entry["lines"])
        assert debit == sum(Decimal(line["credit"]) for line in entry["lines"])
    decisions = ok(server, "GET", f"/decisions?instance_id={started['id']}", token="auditor")
    assert {d["ruleset_key"] for d in decisions["items"]} >= {
        "procurement",
        "goods_receipt",
        "duplicate_invoice",
        "three_way_match",
        "payment_discount",
    }
    po = ok(server, "GET", f"/purchase-orders/{PO}", token="auditor")
    assert po["status"] == "closed" and po["receipts"][0]["status"] == "released"


def test_requester_cannot_approve_their_own_requisition_over_http(p2p_server):
    server = p2p_server
    ok(
        server,
        "PUT",
        "/suppliers/S001",
        {"name": "Medsupply", "blocked": False, "bank_account_trusted": True},
    )
    ok(server, "POST", "/processes/procure_to_pay/instances", requisition("PR-2002", "dora", 1000))
    [task] = ok(server, "GET", "/tasks?scope=mine", token="dora")["items"]
    status, problem = server.call(
        "POST",
        f"/api/v1/tasks/{task['id']}/complete",
        {"variables": {"decision": "approve"}},
        "dora",
    )
    assert status == 403
    assert "dora requested this requisition" in problem["detail"]
