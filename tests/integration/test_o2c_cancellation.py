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


def held_for_credit(api: O2CApi, order_no: str) -> str:
    api.customer("C1", credit_limit="1000.00")
    return api.start(order_no, "C1", [line()])["id"]


def released(api: O2CApi, order_no: str) -> str:
    return api.start(order_no, "C1", [line()])["id"]


@pytest.mark.parametrize(
    ("stage", "exposure", "posted"),
    [(held_for_credit, "0.00", []), (released, "2260.00", []),
     (shipped, "2260.00", ["goods_issue", "customer_invoice"])],
)  # fmt: skip
def test_an_admin_cancel_of_an_order_cancels_it_as_the_erp_message_does(
    api: O2CApi, stage, exposure: str, posted: list[str]
) -> None:
    api.customer("C1")
    api.lot("L1")
    instance_id = stage(api, "SO-ADM")
    assert api.ok("GET", "/customers/C1/credit")["exposure"]["total"] == exposure

    cancelled = api.call(
        "POST", f"/instances/{instance_id}/cancel", who="admin", json={"reason": "entered twice"}
    )

    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["id"] == instance_id
    instance = api.instance(instance_id)
    assert instance["status"] != "running" and instance["incident"] is None
    assert instance["waiting_for"] == [] and api.open_tasks("SO-ADM") == []
    [event] = api.outbox_payloads(instance_id, "order.cancelled")
    assert event == {"order_no": "SO-ADM", "reason": "entered twice"}
    # The exposure is released and every posting reversed, as for the order_cancelled message.
    assert api.ok("GET", "/customers/C1/credit")["exposure"]["total"] == "0.00"
    entries = assert_balanced(api, "SO-ADM") if posted else api.entries("SO-ADM")
    assert [e["kind"] for e in entries] == posted + [f"{kind}.reversal" for kind in posted]
    # The number stays the cancelled order's: a start of it again says so.
    order = {"order_no": "SO-ADM", "customer_id": "C1", "currency": "CNY",
             "order_date": "2026-11-23", "lines": [line()]}  # fmt: skip
    again = api.call(
        "POST",
        "/processes/order_to_cash/instances",
        json={"business_key": "SO-ADM", "variables": {"order": order}},
        headers={"Idempotency-Key": "start-SO-ADM-again"},
    )
    assert again.status_code == 422, again.json
    [error] = again.json["errors"]
    assert error["field"] == "variables.order.order_no" and "cancelled" in error["message"]
    twice = api.call("POST", f"/instances/{instance_id}/cancel", who="admin", json={})
    assert twice.status_code == 409, twice.json


def test_an_admin_cancel_with_a_reason_too_long_for_the_postings_is_refused(api: O2CApi) -> None:
    api.customer("C1")
    api.lot("L1")
    instance_id = shipped(api, "SO-ADM")

    refused = api.call("POST", f"/instances/{instance_id}/cancel", who="admin",
                       json={"reason": "r" * 301})  # fmt: skip

    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == ["reason"]
    assert api.instance(instance_id)["status"] == "running"


@pytest.mark.parametrize(
    ("customer", "lot", "failed_at"),
    [("C-UNKNOWN", "L1", "register_order"), ("C1", "L-NOT-IN-MASTER", "shipment_facts")],
)
def test_an_admin_cancel_ends_an_order_stuck_in_an_incident(
    api: O2CApi, customer: str, lot: str, failed_at: str
) -> None:
    api.customer("C1")
    started = api.start("SO-INC", customer, [{**line(), "lot": lot}])
    assert started["incident"]["element_id"] == failed_at, started

    cancelled = api.call("POST", f"/instances/{started['id']}/cancel", who="admin", json={})

    assert cancelled.status_code == 200, cancelled.json
    instance = api.instance(started["id"])
    assert instance["status"] != "running" and instance["incident"] is None, instance
    [event] = api.outbox_payloads(started["id"], "order.cancelled")
    assert event == {"order_no": "SO-INC", "reason": "cancelled"}
    assert api.ok("GET", "/customers/C1/credit")["exposure"]["total"] == "0.00"


def test_an_admin_cancel_of_another_process_still_only_stops_it(
    api: O2CApi, approval_bpmn: bytes
) -> None:
    from tests.integration.conftest import deploy_approval

    deploy_approval(api.container, approval_bpmn)
    started = api.ok("POST", "/processes/approval/instances",
                     json={"business_key": "A-1", "variables": {"amount": 5000}})  # fmt: skip

    cancelled = api.call("POST", f"/instances/{started['id']}/cancel", who="admin",
                         json={"reason": "r" * 400})  # fmt: skip

    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["status"] == "cancelled" and "cancelled_by" not in cancelled.json
