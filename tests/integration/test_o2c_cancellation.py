"""Cancelling an order on SQLite and PostgreSQL: what it undoes, and what it must leave alone."""

from __future__ import annotations

import pytest

from api.bootstrap import Container
from tests.integration.o2c_support import O2CApi, assert_balanced, make_api, udi


@pytest.fixture
def api(container: Container) -> O2CApi:
    return make_api(container)


def line(qty: int = 2) -> dict:
    return {"line_no": 1, "gtin": "06901234567892", "lot": "L1", "qty": qty,
            "unit_price": "1000.00", "tax_rate": "0.13"}  # fmt: skip


def shipped(api: O2CApi, order_no: str) -> str:
    started = api.start(order_no, "C1", [line()])
    units = [udi("L1", 1), udi("L1", 2)]
    response = api.ship(order_no, [{"line_no": 1, "qty": 2, "udis": units}])
    assert response.status_code == 200, response.json
    return started["id"]


def erp_item(document_no: str, order_no: str) -> dict:
    return {"document_no": document_no, "customer_id": "C1", "amount": "500.00",
            "doc_date": "2026-11-01", "due_date": "2026-12-31", "order_no": order_no}  # fmt: skip


def receivables(api: O2CApi, order_no: str) -> dict[str, tuple[str, str]]:
    items = api.ok("GET", f"/receivables?order_no={order_no}")["items"]
    return {i["document_no"]: (i["status"], i["open_amount"]) for i in items}


def test_cancelling_an_order_leaves_an_erp_receivable_carrying_its_number_open(
    api: O2CApi,
) -> None:
    api.customer("C1")
    api.lot("L1")
    # The ERP's own open item, synced before flowgate ever saw the order.
    api.ok("POST", "/receivables", json=erp_item("AR-F22", "SO-F22"))
    shipped(api, "SO-F22")

    cancelled = api.message("order_cancelled", "SO-F22", {"reason": "customer returned it"})

    assert cancelled.status_code == 200, cancelled.json
    assert receivables(api, "SO-F22") == {
        "AR-F22": ("open", "500.00"),
        "INV-SO-F22": ("cancelled", "0.00"),
    }
    credit = api.ok("GET", "/customers/C1/credit", who="carol")
    assert credit["exposure"]["open_receivables"] == "500.00", credit
    # Only the order's own postings were reversed; the ERP item never had one here.
    kinds = [e["kind"] for e in assert_balanced(api, "SO-F22")]
    assert kinds == [
        "goods_issue",
        "customer_invoice",
        "goods_issue.reversal",
        "customer_invoice.reversal",
    ]


def test_an_erp_receivable_for_an_order_flowgate_processes_is_refused(api: O2CApi) -> None:
    api.customer("C1")
    api.lot("L1")
    instance_id = shipped(api, "SO-F23")

    refused = api.call("POST", "/receivables", json=erp_item("AR-F23", "SO-F23"))

    assert refused.status_code == 422, refused.json
    [error] = refused.json["errors"]
    assert error["field"] == "order_no" and instance_id in error["message"], error
    assert receivables(api, "SO-F23") == {"INV-SO-F23": ("open", "2260.00")}
    # An order number flowgate does not process is the ERP's to book.
    api.ok("POST", "/receivables", json=erp_item("AR-F24", "SO-ERP-ONLY"))
