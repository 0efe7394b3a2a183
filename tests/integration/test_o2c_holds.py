"""Order entry holds and picks on SQLite and PostgreSQL: licence, live exposure, FEFO (issue 4)."""

from __future__ import annotations

import pytest

from api.bootstrap import Container
from tests.integration.o2c_support import O2CApi, assert_balanced, make_api, udi


@pytest.fixture
def api(container: Container) -> O2CApi:
    return make_api(container)


def line(lot: str | None = "L1", qty: int = 2, price: str = "1000.00") -> dict:
    body = {"line_no": 1, "gtin": "06901234567892", "qty": qty, "unit_price": price,
            "tax_rate": "0.13"}  # fmt: skip
    return body | ({"lot": lot} if lot else {})


def waits(api: O2CApi, instance_id: str) -> list[str]:
    return [w["name"] for w in api.instance(instance_id)["waiting_for"] if w["type"] == "message"]


def test_expired_licence_holds_the_order_for_the_qa_manager_not_credit(api: O2CApi) -> None:
    api.customer("C-LIC", license_expires_on="2026-01-31")
    api.lot("L1")
    started = api.start("SO-LIC", "C-LIC", [line()])
    [task] = api.open_tasks("SO-LIC")
    assert task["element_id"] == "approve_credit"
    assert task["candidate_groups"] == ["qa_manager"]
    assert waits(api, started["id"]) == []
    [credit] = [d for d in api.decisions(started["id"]) if d["ruleset_key"] == "credit"]
    assert credit["outcome"] == "hold"
    assert "licence_invalid" in str(credit), credit
    assert "order.credit_held" in api.outbox_events(started["id"])
    # A credit manager may not lift a licence hold; the QA manager may, with a reason.
    refused = api.complete(task["id"], "carol", approved=True, reason="paid on time")
    assert refused.status_code == 403, refused.json
    done = api.complete(task["id"], "quinn", approved=True, reason="renewal filed 2026-11-20")
    assert done.status_code == 200, done.json
    # Before goods issue the shipment check holds on the licence again, for QA (no override).
    [check] = api.open_tasks("SO-LIC")
    assert check["element_id"] == "qa_release_task" and check["candidate_groups"] == ["qa_manager"]
    held = [d for d in api.decisions(started["id"]) if d["ruleset_key"] == "shipment"]
    assert [r["rule_id"] for r in held[-1]["record"]["fired"]] == ["licence_expired"]
    # A release without a renewed licence only leads to the same hold on the re-check.
    assert api.complete(check["id"], "quinn", lot_released=True, reason="filed").status_code == 200
    [again] = api.open_tasks("SO-LIC")
    assert again["element_id"] == "qa_release_task" and again["id"] != check["id"]
    api.customer("C-LIC", license_expires_on="2028-01-31")  # the ERP sends the renewal
    done = api.complete(again["id"], "quinn", lot_released=True, reason="licence renewed")
    assert done.status_code == 200, done.json
    assert waits(api, started["id"]) == ["shipment_confirmed"]
    lot = api.ok("GET", "/lots/06901234567892/L1", who="auditor")
    assert lot["status"] == "released"


def test_an_open_order_counts_in_exposure_so_the_next_one_is_held(api: O2CApi) -> None:
    api.customer("C-EXP", credit_limit="4000.00")
    api.lot("L1")
    first = api.start("SO-EXP-1", "C-EXP", [line()])  # 2260.00 gross: within the limit
    assert waits(api, first["id"]) == ["shipment_confirmed"]
    credit = api.ok("GET", "/customers/C-EXP/credit", who="carol")
    assert credit["exposure"]["total"] == "2260.00", credit
    assert credit["available"] == "1740.00"
    # Alone 2260.00 would pass; with the first order still open it is 520.00 over.
    second = api.start("SO-EXP-2", "C-EXP", [line()])
    [task] = api.open_tasks("SO-EXP-2")
    assert task["element_id"] == "approve_credit"
    assert task["candidate_groups"] == ["credit_manager"]
    held = [d for d in api.decisions(second["id"]) if d["ruleset_key"] == "credit"]
    assert [d["outcome"] for d in held] == ["hold"]
    # A held order is not approved, so it is not exposure (DOMAIN §1) until it is released.
    credit = api.ok("GET", "/customers/C-EXP/credit", who="carol")
    assert credit["exposure"]["open_orders"] == "2260.00", credit
    # Once the first order is shipped and paid its exposure is gone again.
    units = [udi("L1", 1), udi("L1", 2)]
    shipped = api.ship("SO-EXP-1", [{"line_no": 1, "qty": 2, "udis": units}])
    assert shipped.status_code == 200, shipped.json
    paid = api.message(
        "payment_received",
        "SO-EXP-1",
        {"invoice_no": "INV-SO-EXP-1", "amount": "2260.00", "paid_on": "2026-12-01"},
    )
    assert paid.json["instance_status"] == "completed", paid.json
    credit = api.ok("GET", "/customers/C-EXP/credit", who="carol")
    assert credit["exposure"]["total"] == "0.00", credit
    assert_balanced(api, "SO-EXP-1")


def test_a_line_without_a_lot_is_picked_fefo_from_released_lots_with_shelf_life(
    api: O2CApi,
) -> None:
    api.customer("C-FEFO")
    api.lot("LF-LATE", expiry="2029-06-30")
    api.lot("LF-FIRST", expiry="2028-12-31")
    api.lot("LF-SHORT", expiry="2027-01-15")  # released, but too little shelf life left
    api.lot("LF-QUAR", status="quarantined", expiry="2028-06-30")
    started = api.start("SO-FEFO", "C-FEFO", [line(lot=None)])
    assert waits(api, started["id"]) == ["shipment_confirmed"], api.open_tasks("SO-FEFO")
    units = [udi("LF-FIRST", n, expiry="281231") for n in (1, 2)]
    shipped = api.ship("SO-FEFO", [{"line_no": 1, "qty": 2, "udis": units}])
    assert shipped.status_code == 200, shipped.json
    [issue, *_] = assert_balanced(api, "SO-FEFO")
    assert issue["kind"] == "goods_issue"
    assert {ln["lot"] for ln in issue["lines"] if ln.get("lot")} == {"LF-FIRST"}
    trace = api.ok("GET", "/traceability/lots/06901234567892/LF-FIRST", who="auditor")
    assert trace["orders"] == ["SO-FEFO"]
    shipment = [d for d in api.decisions(started["id"]) if d["ruleset_key"] == "shipment"]
    assert shipment and all(d["outcome"] in ("pass", "warn") for d in shipment)


def start_shipping_on(api: O2CApi, order_no: str, customer: str, ship_date: str) -> dict:
    order = {"order_no": order_no, "customer_id": customer, "currency": "CNY",
             "order_date": "2026-11-23", "requested_ship_date": ship_date,
             "lines": [line()]}  # fmt: skip
    body = {"business_key": order_no, "variables": {"order": order}}
    return api.ok("POST", "/processes/order_to_cash/instances", json=body)


def test_dynamic_check_leaves_out_open_orders_shipping_beyond_the_horizon(api: O2CApi) -> None:
    api.customer("C-DYN", credit_limit="4000.00")
    api.lot("L1")
    later = start_shipping_on(api, "SO-DYN-1", "C-DYN", "2027-03-01")  # past 30 days
    assert waits(api, later["id"]) == ["shipment_confirmed"]
    # The static check (the default) counts that order: this one is held.
    static = start_shipping_on(api, "SO-DYN-2", "C-DYN", "2026-11-25")
    [task] = api.open_tasks("SO-DYN-2")
    facts = api.decisions(static["id"])[0]["record"]["facts"]
    assert (facts["static_exposure"], facts["dynamic_exposure"]) == ("4520.00", "2260.00")
    assert facts["checked_exposure"] == "4520.00"
    rejected = api.complete(task["id"], "carol", approved=False, reason="wait for the big order")
    assert rejected.status_code == 200, rejected.json
    assert api.instance(static["id"])["status"] == "completed"

    analyst = api.container.tokens.issue("ann", ["analyst"])
    changed = api.client.put(
        "/api/v1/rulesets/credit/parameters",
        json={"values": {"p_exposure_check": "dynamic"}, "effective_from": "2026-01-01"},
        headers={"Authorization": f"Bearer {analyst}"},
    )
    assert changed.status_code == 201, changed.json
    dynamic = start_shipping_on(api, "SO-DYN-3", "C-DYN", "2026-11-25")
    assert waits(api, dynamic["id"]) == ["shipment_confirmed"], api.open_tasks("SO-DYN-3")
    [decision] = [d for d in api.decisions(dynamic["id"]) if d["ruleset_key"] == "credit"]
    assert decision["outcome"] in ("pass", "warn")
    assert decision["record"]["parameters"]["p_exposure_check"] == "dynamic"
    assert decision["record"]["facts"]["checked_exposure"] == "2260.00"
