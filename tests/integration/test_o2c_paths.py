"""Order to cash through HTTP on SQLite and PostgreSQL: one test per path (issue 4)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from api.bootstrap import Container
from tests.integration.o2c_support import O2CApi, assert_balanced, make_api, udi


@pytest.fixture
def api(container: Container) -> O2CApi:
    return make_api(container)


def line(lot: str = "L1", qty: int = 2, price: str = "1000.00", n: int = 1) -> dict:
    return {
        "line_no": n,
        "gtin": "06901234567892",
        "lot": lot,
        "qty": qty,
        "unit_price": price,
        "tax_rate": "0.13",
    }


def test_auto_release_ship_invoice_pay_in_two_parts_close(api: O2CApi) -> None:
    api.customer("C1")
    api.lot("L1")
    started = api.start("SO-1", "C1", [line()])
    assert started["status"] == "running", started
    assert [w["name"] for w in started["waiting_for"]] == ["shipment_confirmed"]
    shipped = api.ship("SO-1", [{"line_no": 1, "qty": 2, "udis": [udi("L1", 1), udi("L1", 2)]}])
    assert shipped.status_code == 200, shipped.json
    credit = api.ok("GET", "/customers/C1/credit", who="carol")
    assert credit["exposure"]["open_receivables"] == "2260.00"
    assert credit["available"] == str(Decimal("100000.00") - Decimal("2260.00"))
    first = api.message(
        "payment_received",
        "SO-1",
        {"invoice_no": "INV-SO-1", "amount": "1000.00", "paid_on": "2026-12-01"},
    )
    assert first.json.get("instance_status") == "running", (
        first.json,
        api.instance(shipped.json["instance_id"]),
    )
    second = api.message(
        "payment_received",
        "SO-1",
        {"invoice_no": "INV-SO-1", "amount": "1260.00", "paid_on": "2026-12-05"},
    )
    assert second.json["instance_status"] == "completed"
    entries = assert_balanced(api, "SO-1")
    assert [e["kind"] for e in entries] == [
        "goods_issue",
        "customer_invoice",
        "customer_payment",
        "customer_payment",
    ]
    issue = entries[0]
    assert {ln["udi"] for ln in issue["lines"]} == {udi("L1", 1), udi("L1", 2)}
    assert {ln["account"] for ln in entries[1]["lines"]} == {"1122", "6001", "22210106"}
    decisions = api.decisions(started["id"])
    assert {d["ruleset_key"] for d in decisions} == {"credit", "shipment"}
    assert all(d["outcome"] in ("pass", "warn") for d in decisions)
    events = api.outbox_events(started["id"])
    for expected in ("order.released", "shipment.requested", "invoice.posted", "journal.posted"):
        assert expected in events
    trace = api.ok("GET", "/traceability/lots/06901234567892/L1", who="auditor")
    assert trace["orders"] == ["SO-1"] and trace["invoices"] == ["INV-SO-1"]
    assert {u["serial"] for u in trace["units"]} == {"S1", "S2"}
    assert api.ok("GET", "/customers/C1/credit", who="carol")["exposure"]["total"] == "0.00"
