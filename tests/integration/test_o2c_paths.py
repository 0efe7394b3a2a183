"""Order to cash through HTTP on SQLite and PostgreSQL: one test per path (issue 4)."""

from __future__ import annotations

import io
from decimal import Decimal

import pytest

from api.app import create_app
from api.bootstrap import Container
from tests.integration.o2c_support import MODEL as O2C_MODEL
from tests.integration.o2c_support import O2CApi, assert_balanced, make_api, udi
from tests.integration.p2p_support import MODEL as P2P_MODEL


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


def test_an_order_line_with_a_gtin_13_is_traced_by_the_14_digit_gtin(api: O2CApi) -> None:
    """DOMAIN §3: every GTIN is stored as 14 digits, so the recall query finds every entry."""
    api.customer("C1")
    api.lot("L1")
    api.start("SO-13", "C1", [{**line(), "gtin": "6901234567892"}])
    _ship_ok(api, "SO-13")
    trace = api.ok("GET", "/traceability/lots/06901234567892/L1", who="auditor")
    entries = assert_balanced(api, "SO-13")
    assert [e["kind"] for e in entries] == ["goods_issue", "customer_invoice"]
    assert sorted(trace["journal_entry_ids"]) == sorted(e["id"] for e in entries), trace
    assert {ln.get("gtin") for e in entries for ln in e["lines"]} <= {"06901234567892", None}


def _waits(api: O2CApi, instance_id: str) -> list[str]:
    return [w["name"] for w in api.instance(instance_id)["waiting_for"] if w["type"] == "message"]


def _only_task(api: O2CApi, order_no: str, element_id: str) -> dict:
    tasks = api.open_tasks(order_no)
    assert [t["element_id"] for t in tasks] == [element_id], tasks
    return tasks[0]


def _ship_ok(
    api: O2CApi, order_no: str, lot: str = "L1", qty: int = 2, expiry: str = "281231"
) -> None:
    units = [udi(lot, n, expiry) for n in range(1, qty + 1)]
    response = api.ship(order_no, [{"line_no": 1, "qty": qty, "udis": units}])
    assert response.status_code == 200, response.json


def test_over_limit_is_held_until_the_credit_manager_approves_then_ships(api: O2CApi) -> None:
    api.customer("C2", credit_limit="2000.00")
    api.lot("L1")
    started = api.start("SO-2", "C2", [line()])  # 2260.00 gross: 13 % over the limit
    # Only the hold's escalation timer waits; no message is expected yet.
    assert [w["element_id"] for w in started["waiting_for"]] == ["credit_approval_idle"]
    task = _only_task(api, "SO-2", "approve_credit")
    assert task["candidate_groups"] == ["credit_manager"]
    assert (
        api.call(
            "POST",
            "/messages",
            json={"name": "shipment_confirmed", "correlation_key": "SO-2", "payload": {}},
        ).status_code
        == 202
    )
    assert api.complete(task["id"], "quinn", approved=True, reason="x").status_code == 403
    done = api.complete(task["id"], "carol", approved=True, reason="long-standing customer")
    assert done.status_code == 200, done.json
    _ship_ok(api, "SO-2")
    holds = api.decisions(started["id"])
    assert holds[0]["outcome"] == "hold" or any(d["outcome"] == "hold" for d in holds)
    assert "order.credit_held" in api.outbox_events(started["id"])
    assert_balanced(api, "SO-2")


def test_large_overage_needs_two_different_approvers(api: O2CApi) -> None:
    api.customer("C3", credit_limit="1000.00")
    api.lot("L1")
    started = api.start("SO-3", "C3", [line()])  # 126 % over: N-eyes
    first = _only_task(api, "SO-3", "approve_credit")
    assert api.complete(first["id"], "both", approved=True, reason="ok").status_code == 200
    second = _only_task(api, "SO-3", "approve_credit_second")
    assert second["candidate_groups"] == ["finance_director"]
    refused = api.complete(second["id"], "both", approved=True, reason="me again")
    assert refused.status_code == 403, refused.json
    assert api.complete(second["id"], "frank", approved=True, reason="agreed").status_code == 200
    assert api.instance(started["id"])["waiting_for"][0]["name"] == "shipment_confirmed"


def test_over_limit_rejected_ends_the_order_and_tells_the_erp(api: O2CApi) -> None:
    api.customer("C4", credit_limit="1000.00")
    api.lot("L1")
    started = api.start("SO-4", "C4", [line(qty=1)])
    task = _only_task(api, "SO-4", "approve_credit")
    assert api.complete(task["id"], "carol", approved=False, reason="no").status_code == 200
    assert api.instance(started["id"])["status"] == "completed"
    assert "order.rejected" in api.outbox_events(started["id"])
    assert api.entries("SO-4") == []


def test_grade_d_waits_for_prepayment(api: O2CApi) -> None:
    api.customer("C5", grade="D")
    api.lot("L1")
    started = api.start("SO-5", "C5", [line(qty=1)])
    assert [w["name"] for w in started["waiting_for"]] == ["prepayment_received"]
    part = api.message("prepayment_received", "SO-5", {"amount": "500.00"})
    assert part.status_code == 200
    assert [w["name"] for w in api.instance(started["id"])["waiting_for"]] == [
        "prepayment_received"
    ]
    api.message("prepayment_received", "SO-5", {"amount": "630.00"})
    assert [w["name"] for w in api.instance(started["id"])["waiting_for"]] == ["shipment_confirmed"]


@pytest.mark.parametrize(
    ("payload", "field"),
    [
        ({"amount": "-500.00"}, "payload.amount"),
        ({"amount": "0"}, "payload.amount"),
        ({"amount": "abc"}, "payload.amount"),
        ({"amount": "1e30"}, "payload.amount"),
        ({"amount": "1130.001"}, "payload.amount"),
        ({"amount": "1130.00", "order_no": "SO-OTHER"}, "payload.order_no"),
    ],
)
def test_a_prepayment_that_cannot_be_booked_is_refused_and_the_order_keeps_waiting(
    api: O2CApi, payload: dict, field: str
) -> None:
    api.customer("C5", grade="D")
    api.lot("L1")
    started = api.start("SO-5", "C5", [line(qty=1)])
    refused = api.message("prepayment_received", "SO-5", payload)
    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == [field]
    instance = api.instance(started["id"])
    assert instance["status"] == "running"
    assert [w["name"] for w in instance["waiting_for"]] == ["prepayment_received"]


def test_recalled_lot_rejects_the_line_and_nothing_can_ship_it(api: O2CApi) -> None:
    api.customer("C6")
    api.lot("LR", status="recalled")
    started = api.start("SO-6", "C6", [line("LR")])
    assert api.instance(started["id"])["status"] == "completed"
    assert "order.rejected" in api.outbox_events(started["id"])
    assert api.ship("SO-6", [{"line_no": 1, "qty": 2, "udis": []}]).status_code == 202
    lifted = api.call(
        "PUT", "/lots/06901234567892/LR", json={"expiry_date": "2028-12-31", "status": "released"}
    )
    assert lifted.status_code == 409
    assert any(d["outcome"] == "reject" for d in api.decisions(started["id"]))
    assert api.entries("SO-6") == []


def test_a_recall_cannot_be_lifted_by_way_of_another_status(api: O2CApi) -> None:
    path = "/lots/06901234567892/LREC"
    api.lot("LREC", status="recalled")
    returned = api.call("PUT", path, json={"expiry_date": "2028-12-31", "status": "returned"})
    assert returned.status_code == 200, returned.json
    lifted = api.call("PUT", path, json={"expiry_date": "2028-12-31", "status": "released"})
    assert lifted.status_code == 409, lifted.json
    assert "recall cannot be lifted" in lifted.json["detail"]
    assert api.ok("GET", path)["status"] == "returned"


def test_a_lot_under_a_field_safety_action_rejects_the_line_like_a_recall(api: O2CApi) -> None:
    api.customer("C6")
    api.lot("LF", status="fsca")
    started = api.start("SO-6F", "C6", [line("LF")])
    assert api.instance(started["id"])["status"] == "completed"
    assert "order.rejected" in api.outbox_events(started["id"])
    [decision] = [d for d in api.decisions(started["id"]) if d["ruleset_key"] == "shipment"]
    assert decision["outcome"] == "reject", decision
    assert api.entries("SO-6F") == []


def test_quarantined_lot_ships_after_qa_releases_it(api: O2CApi) -> None:
    api.customer("C7")
    api.lot("LQ", status="quarantined")
    started = api.start("SO-7", "C7", [line("LQ")])
    task = _only_task(api, "SO-7", "qa_release_task")
    assert task["candidate_groups"] == ["qa_manager"]
    assert api.complete(task["id"], "sam", lot_released=True).status_code == 403
    assert api.complete(task["id"], "quinn", lot_released=True, reason="CoA ok").status_code == 200
    assert api.ok("GET", "/lots/06901234567892/LQ")["status"] == "released"
    _ship_ok(api, "SO-7", "LQ")
    assert [d["outcome"] for d in api.decisions(started["id"]) if d["ruleset_key"] == "shipment"][
        :2
    ] == ["hold", "pass"]
    assert_balanced(api, "SO-7")


def test_short_shelf_life_ships_with_a_sales_manager_override_and_its_reason(api: O2CApi) -> None:
    api.customer("C8")
    api.lot("LS", expiry="2027-02-28")  # about 97 days left, minimum 180
    started = api.start("SO-8", "C8", [line("LS")])
    task = _only_task(api, "SO-8", "override_task")
    assert set(task["candidate_groups"]) == {"qa_manager", "sales_manager"}
    missing = api.complete(task["id"], "sam", override=True)
    assert missing.status_code == 422
    ok = api.complete(task["id"], "sam", override=True, reason="customer uses it this month")
    assert ok.status_code == 200, ok.json
    _ship_ok(api, "SO-8", "LS", 2, expiry="270228")
    with api.container.runtime.uow(write=False) as uow:
        from domain.sales import releases

        (release,) = releases(uow.session, "SO-8", "shelf_life_override")
        assert (release.released_by, release.reason) == ("sam", "customer uses it this month")
        assert release.rule_ids == ["shelf_life_below_minimum"]
    assert "payment_received" in _waits(api, started["id"])


def test_udi_check_digit_error_is_held_until_corrected_data_arrives(api: O2CApi) -> None:
    api.customer("C9")
    api.lot("L1")
    started = api.start("SO-9", "C9", [line(qty=1)])
    bad = udi("L1", 1, gtin="06901234567891")
    held = api.ship("SO-9", [{"line_no": 1, "qty": 1, "udis": [bad]}])
    assert held.status_code == 200
    body = api.instance(started["id"])
    assert [w["name"] for w in body["waiting_for"]] == ["shipment_confirmed"]
    assert api.entries("SO-9") == []
    # The hold is in the order's history, with the decision that made it.
    [held_by] = [
        e["details"]
        for e in body["history"]
        if e["type"] == "decision" and e["element_id"] == "udi_check"
    ]
    assert held_by["ruleset"] == "shipment" and held_by["outcome"] == "hold"
    assert len(held_by["decision_ids"]) == 1  # one per shipped unit, in one history event
    _ship_ok(api, "SO-9", qty=1)
    assert "payment_received" in _waits(api, started["id"])
    outcomes = [
        d["outcome"] for d in api.decisions(started["id"]) if d["ruleset_key"] == "shipment"
    ]
    assert "hold" in outcomes
    assert_balanced(api, "SO-9")


def test_a_step_that_fails_halfway_leaves_no_history_of_decisions_it_rolled_back(
    api: O2CApi, monkeypatch
) -> None:
    from engine.store.tables import DecisionRecord

    api.customer("C9")
    api.lot("L1")
    started = api.start("SO-9", "C9", [line(qty=2)])
    o2c = api.container.runtime.services.handler("shipment.udi_check").__self__
    real = o2c.rules.evaluate
    calls = []

    def fails_on_the_second_unit(key, facts, as_of):
        if key == "shipment":
            calls.append(key)
            if len(calls) % 2 == 0:  # the second unit, in the first run and in the guarded one
                raise RuntimeError("rules service unavailable")
        return real(key, facts, as_of)

    monkeypatch.setattr(o2c.rules, "evaluate", fails_on_the_second_unit)
    api.ship("SO-9", [{"line_no": 1, "qty": 2, "udis": [udi("L1", 1), udi("L1", 2)]}])

    body = api.instance(started["id"])
    assert body["status"] == "incident"
    named = [
        i
        for e in body["history"]
        if e["type"] == "decision" and e["element_id"] == "udi_check"
        for i in e["details"]["decision_ids"]
    ]
    # The first unit's decision went with the failed step; no history event may name it.
    with api.container.runtime.uow(write=False) as uow:
        assert [i for i in named if uow.session.get(DecisionRecord, i) is None] == []
    assert named == []


@pytest.mark.parametrize("udis", [None, []])
def test_a_shipment_without_its_udis_is_held_until_they_arrive(api: O2CApi, udis) -> None:
    api.customer("C1")
    api.lot("L1")
    started = api.start("SO-NOUDI", "C1", [line()])

    held = api.ship("SO-NOUDI", [{"line_no": 1, "qty": 2, "udis": udis}])

    assert held.status_code == 200
    assert _waits(api, started["id"]) == ["shipment_confirmed"]
    assert api.entries("SO-NOUDI") == []
    _ship_ok(api, "SO-NOUDI")
    assert _waits(api, started["id"]) == ["payment_received"]


def shipped_order(api: O2CApi, order_no: str) -> str:
    api.customer("C1")
    api.lot("L1")
    started = api.start(order_no, "C1", [line()])
    shipped = api.ship(order_no, [{"line_no": 1, "qty": 2, "udis": [udi("L1", 1), udi("L1", 2)]}])
    assert shipped.status_code == 200, shipped.json
    return started["id"]


@pytest.mark.parametrize(
    ("lines", "field", "message"),
    [
        ("x", "payload.lines", "must be a non-empty list of lines"),
        ([None], "payload.lines[0]", "must be an object"),
        ([{"line_no": "x", "qty": 2}], "payload.lines[0].line_no", "must be a positive integer"),
        ([{"line_no": 1, "qty": None}], "payload.lines[0].qty", "must be a positive integer"),
        (
            [{"line_no": 1, "qty": 2, "udis": 123}],
            "payload.lines[0].udis",
            "must be a list of UDI strings",
        ),
    ],
)
def test_an_unreadable_shipment_is_refused_and_the_order_keeps_waiting(
    api: O2CApi, lines: object, field: str, message: str
) -> None:
    api.customer("C1")
    api.lot("L1")
    started = api.start("SO-SHIP", "C1", [line()])

    if isinstance(lines, dict):  # not the lines: the rest of the payload is wrong
        payload = {"ship_date": "2026-11-23", "lines": [{"line_no": 1, "qty": 2}], **lines}
        refused = api.message("shipment_confirmed", "SO-SHIP", payload)
    else:
        refused = api.ship("SO-SHIP", lines)  # type: ignore[arg-type]

    assert refused.status_code == 422, refused.json
    assert refused.json["errors"] == [{"field": field, "message": message}]
    instance = api.instance(started["id"])
    assert instance["status"] == "running" and instance["incident"] is None
    assert _waits(api, started["id"]) == ["shipment_confirmed"]
    shipped = api.ship("SO-SHIP", [{"line_no": 1, "qty": 2, "udis": [udi("L1", 1), udi("L1", 2)]}])
    assert shipped.status_code == 200 and _waits(api, started["id"]) == ["payment_received"]


def test_an_unreadable_shipment_sent_early_goes_back_to_the_erp_and_the_order_waits(
    api: O2CApi,
) -> None:
    api.customer("C1")
    api.lot("L1")
    early = api.message("shipment_confirmed", "SO-SOON", {"lines": "garbage"})
    assert early.status_code == 202

    started = api.start("SO-SOON", "C1", [line()])

    assert started["status"] == "running" and started.get("incident") is None
    assert _waits(api, started["id"]) == ["shipment_confirmed"]
    [refused] = api.outbox_payloads(started["id"], "message.refused")
    assert refused["errors"] == [
        {"field": "payload.lines", "message": "must be a non-empty list of lines"}
    ]


def test_a_payment_with_an_unreadable_amount_is_refused_and_the_order_keeps_waiting(
    api: O2CApi,
) -> None:
    instance_id = shipped_order(api, "SO-PAY")

    refused = api.message(
        "payment_received", "SO-PAY", {"invoice_no": "INV-SO-PAY", "amount": "2.260,00"}
    )

    assert refused.status_code == 422, refused.json
    assert refused.json["errors"] == [
        {"field": "payload.amount", "message": "must be a decimal string"}
    ]
    instance = api.instance(instance_id)
    assert instance["status"] == "running" and instance["incident"] is None
    assert _waits(api, instance_id) == ["payment_received"]
    assert [e["kind"] for e in assert_balanced(api, "SO-PAY")] == [
        "goods_issue",
        "customer_invoice",
    ]
    paid = api.message(
        "payment_received", "SO-PAY", {"invoice_no": "INV-SO-PAY", "amount": "2260.00"}
    )
    assert paid.json["instance_status"] == "completed"


def test_an_order_already_in_process_cannot_be_started_again(api: O2CApi) -> None:
    first = shipped_order(api, "SO-ONCE")
    order = {"order_no": "SO-ONCE", "customer_id": "C1", "currency": "CNY"}
    order |= {"order_date": "2026-11-23", "lines": [line()]}

    again = api.call(
        "POST",
        "/processes/order_to_cash/instances",
        json={"business_key": "SO-ONCE", "variables": {"order": order}},
        headers={"Idempotency-Key": "start-SO-ONCE-again"},
    )

    assert again.status_code == 422, again.json
    assert again.json["errors"] == [
        {
            "field": "variables.order.order_no",
            "message": f"is already being processed by instance {first}",
        }
    ]
    listed = api.ok("GET", "/instances?business_key=SO-ONCE")
    assert [i["id"] for i in listed["items"]] == [first]


def test_an_order_start_without_the_order_is_refused_and_leaves_no_instance(api: O2CApi) -> None:
    refused = api.call(
        "POST",
        "/processes/order_to_cash/instances",
        json={"business_key": "SO-NONE", "variables": {}},
        headers={"Idempotency-Key": "start-SO-NONE"},
    )

    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == ["variables.order"]
    assert api.ok("GET", "/instances?business_key=SO-NONE")["items"] == []


@pytest.mark.parametrize(
    ("amount", "message"),
    [
        ("2260.01", "exceeds the open amount 2260.00 of INV-SO-OVER"),
        ("100.001", "must be in whole cents"),
    ],
)
def test_a_payment_the_invoice_cannot_take_is_refused_and_the_order_keeps_waiting(
    api: O2CApi, amount: str, message: str
) -> None:
    instance_id = shipped_order(api, "SO-OVER")

    refused = api.message(
        "payment_received", "SO-OVER", {"invoice_no": "INV-SO-OVER", "amount": amount}
    )

    assert refused.status_code == 422, refused.json
    assert refused.json["errors"] == [{"field": "payload.amount", "message": message}]
    assert _waits(api, instance_id) == ["payment_received"]
    assert api.instance(instance_id)["incident"] is None


def test_a_payment_naming_another_invoice_is_refused_and_settles_nothing(api: O2CApi) -> None:
    instance_id = shipped_order(api, "SO-MINE")
    other = {"document_no": "AR-OTHER", "customer_id": "C1", "amount": "9000.00"}
    other |= {"doc_date": "2026-11-01", "due_date": "2026-12-01"}
    api.ok("POST", "/receivables", json=other)

    refused = api.message(
        "payment_received", "SO-MINE", {"invoice_no": "AR-OTHER", "amount": "100.00"}
    )

    assert refused.status_code == 422, refused.json
    assert refused.json["errors"][0]["field"] == "payload.invoice_no"
    assert "INV-SO-MINE" in refused.json["errors"][0]["message"]
    assert _waits(api, instance_id) == ["payment_received"]
    credit = api.ok("GET", "/customers/C1/credit")
    assert credit["exposure"]["open_receivables"] == "11260.00", credit  # 9,000 + 2,260 open
    paid = api.message(
        "payment_received", "SO-MINE", {"invoice_no": "INV-SO-MINE", "amount": "2260.00"}
    )
    assert paid.json["instance_status"] == "completed"


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"unit_price": 1000.5}, "variables.order.lines[0].unit_price", "must be a decimal string"),
        ({"qty": 0}, "variables.order.lines[0].qty", "must be a positive integer"),
        ({"gtin": ""}, "variables.order.lines[0].gtin", "is required"),
        (
            {"gtin": "06901234567893"},
            "variables.order.lines[0].gtin",
            "must be a GTIN-8, 12, 13 or 14 with its check digit",
        ),
        (
            {"tax_rate": "-0.05"},
            "variables.order.lines[0].tax_rate",
            "must be a fraction from 0 up to 1",
        ),
        ({"qty": 10**20}, "variables.order.lines[0].qty", "must be at most 2147483647"),
        (
            {"unit_price": "1" + "0" * 25},
            "variables.order.lines[0].unit_price",
            "must be less than 100,000,000,000 in size",
        ),
        (
            {"qty": 2_000_000, "unit_price": "60000.00"},
            "variables.order.lines[0].qty",
            "times unit_price must be under 100,000,000,000",
        ),
        (
            {"lot": "L" * 65},
            "variables.order.lines[0].lot",
            "must be text of at most 64 characters",
        ),
    ],
)
def test_an_order_with_an_unusable_line_is_refused_and_no_instance_is_left(
    api: O2CApi, change: dict, field: str, message: str
) -> None:
    api.customer("C1")
    api.lot("L1")
    order = {"order_no": "SO-BAD", "customer_id": "C1", "currency": "CNY"}
    order |= {"order_date": "2026-11-23", "lines": [{**line(), **change}]}
    body = {"business_key": "SO-BAD", "variables": {"order": order}}
    retry_key = {"Idempotency-Key": "start-SO-BAD"}

    refused = api.call("POST", "/processes/order_to_cash/instances", json=body, headers=retry_key)

    assert refused.status_code == 422, refused.json
    assert refused.json["errors"] == [{"field": field, "message": message}]
    assert "order_to_cash" in refused.json["detail"]
    assert api.ok("GET", "/instances?business_key=SO-BAD", who="admin")["items"] == []
    assert api.ok("GET", "/customers/C1/credit", who="carol")["exposure"]["total"] == "0.00"
    # Nothing was remembered under the key: the corrected order starts with the same one.
    assert api.start("SO-BAD", "C1", [line()])["status"] == "running"


def test_a_bad_payment_buffered_before_the_wait_goes_back_to_the_erp_and_the_order_waits_on(
    api: O2CApi,
) -> None:
    api.customer("C1")
    api.lot("L1")
    started = api.start("SO-EARLY", "C1", [line()])
    early = api.message(
        "payment_received", "SO-EARLY", {"amount": "lots", "invoice_no": "INV-SO-EARLY"}
    )
    assert early.status_code == 202  # accepted for later: nobody waits for it yet

    shipped = api.ship("SO-EARLY", [{"line_no": 1, "qty": 2, "udis": [udi("L1", 1), udi("L1", 2)]}])

    # The shipment is not refused for the payment's sake, and the payment is no incident.
    assert shipped.status_code == 200, shipped.json
    instance = api.instance(started["id"])
    assert instance["status"] == "running" and instance["incident"] is None
    assert _waits(api, started["id"]) == ["payment_received"]
    assert "message_refused" in [e["type"] for e in instance["history"]]
    assert [e["kind"] for e in assert_balanced(api, "SO-EARLY")] == [
        "goods_issue",
        "customer_invoice",
    ]
    [refused] = api.outbox_payloads(started["id"], "message.refused")
    assert refused["name"] == "payment_received" and refused["payload"]["amount"] == "lots"
    assert refused["errors"] == [{"field": "payload.amount", "message": "must be a decimal string"}]

    paid = api.message(
        "payment_received", "SO-EARLY", {"invoice_no": "INV-SO-EARLY", "amount": "2260.00"}
    )
    assert paid.json["instance_status"] == "completed"


@pytest.mark.parametrize("earlier_cancellations", [0, 2])
def test_cancellation_reverses_the_postings(api: O2CApi, earlier_cancellations: int) -> None:
    api.customer("C10")
    api.lot("L1")
    # Orders cancelled before this one was started must not change how it is cancelled.
    for n in range(earlier_cancellations):
        api.start(f"SO-0{n}", "C10", [line()])
        api.message("order_cancelled", f"SO-0{n}", {"reason": "duplicate order"})
    started = api.start("SO-10", "C10", [line()])
    _ship_ok(api, "SO-10")
    cancelled = api.message("order_cancelled", "SO-10", {"reason": "customer returned it"})
    assert cancelled.status_code == 200, cancelled.json
    entries = assert_balanced(api, "SO-10")
    kinds = [e["kind"] for e in entries]
    assert kinds == [
        "goods_issue",
        "customer_invoice",
        "goods_issue.reversal",
        "customer_invoice.reversal",
    ]
    net: dict[str, Decimal] = {}
    for entry in entries:
        for ln in entry["lines"]:
            net[ln["account"]] = (
                net.get(ln["account"], Decimal(0)) + Decimal(ln["debit"]) - Decimal(ln["credit"])
            )
    assert set(net.values()) == {Decimal(0)}
    assert api.instance(started["id"])["status"] == "completed"
    assert api.ok("GET", "/customers/C10/credit", who="carol")["exposure"]["total"] == "0.00"


def _held_for_credit(api: O2CApi, customer: str, order_no: str) -> tuple[dict, dict]:
    """An order over its customer's limit, waiting at the credit approval task."""
    api.customer(customer, credit_limit="1000.00")
    api.lot("L1")
    started = api.start(order_no, customer, [line(qty=1)])
    [task] = api.open_tasks(order_no)
    return started, task


def test_an_order_cancelled_while_its_credit_hold_waits_ends_with_nothing_to_reverse(
    api: O2CApi,
) -> None:
    """The cancellation is an interrupting event subprocess: it ends the order at any stage."""
    started, task = _held_for_credit(api, "C14", "SO-14")
    assert task["element_id"] == "approve_credit"
    assert [m["name"] for m in started["listening_for"]] == ["order_cancelled"]
    cancelled = api.message("order_cancelled", "SO-14", {"reason": "customer withdrew"})
    assert cancelled.status_code == 200, cancelled.json
    assert cancelled.json["instance_status"] == "completed"
    instance = api.instance(started["id"])
    assert instance["waiting_for"] == [] and api.open_tasks("SO-14") == []
    assert "order.cancelled" in api.outbox_events(started["id"])
    # Nothing was posted, so nothing is reversed.
    assert api.ok("GET", "/journal-entries?source_type=order&source_id=SO-14")["items"] == []
    assert [d["ruleset_key"] for d in api.decisions(started["id"])][:1] == ["credit"]
    assert api.ok("GET", "/customers/C14/credit", who="carol")["exposure"]["total"] == "0.00"


def _timers(api: O2CApi, instance_id: str) -> list:
    from datetime import UTC

    from sqlalchemy import select

    from engine.store.tables import Timer

    with api.container.runtime.uow(write=False) as uow:
        rows = uow.session.scalars(select(Timer.due_at).where(Timer.instance_id == instance_id))
        return [due.replace(tzinfo=UTC) for due in rows]


def test_order_edited_up_after_release_is_credit_checked_again(api: O2CApi) -> None:
    api.customer("C11")
    api.lot("LQ", status="quarantined")
    started = api.start("SO-11", "C11", [line("LQ", qty=10)])
    task = _only_task(api, "SO-11", "qa_release_task")
    changed = api.message("order_changed", "SO-11", {"lines": [line("LQ", qty=11)]})  # +10 %
    assert changed.status_code == 200, changed.json
    assert api.complete(task["id"], "quinn", lot_released=True).status_code == 200
    credit = [d for d in api.decisions(started["id"]) if d["ruleset_key"] == "credit"]
    assert len(credit) == 2
    assert [w["name"] for w in api.instance(started["id"])["waiting_for"]] == ["shipment_confirmed"]


def test_late_payment_raises_dunning_levels_by_timer_and_opens_a_collections_task(
    api: O2CApi,
) -> None:
    from datetime import UTC, datetime, timedelta

    from engine.handlers.o2c import sweep_dunning
    from engine.scheduler import sweep_timers

    rt = api.container.runtime
    rules = rt.rules.rules  # type: ignore[attr-defined]
    api.customer("C12", payment_terms_days=30)
    api.lot("L1")
    started = api.start("SO-12", "C12", [line()])
    _ship_ok(api, "SO-12")
    invoiced = datetime.now(UTC)
    due = (invoiced + timedelta(days=30)).date()
    levels = []
    for days in (7, 21, 35, 60):
        # The instance's timer is set for the day the next level starts, not before.
        [timer] = _timers(api, started["id"])
        assert timer == datetime.combine(due + timedelta(days=days), datetime.min.time(), UTC)
        rt.clock = lambda t=timer: t - timedelta(seconds=1)
        assert sweep_timers(rt) == 0
        rt.clock = lambda t=timer: t
        assert sweep_timers(rt) == 1
        # The ERP-receivable sweep leaves an invoice with its own process alone.
        assert sweep_dunning(rt, rules) == 0
        credit = api.ok("GET", "/customers/C12/credit", who="carol")
        levels.append(credit["dunning_level"])
    assert levels == [1, 2, 3, 4]
    dunning = [d for d in api.decisions(started["id"]) if d["ruleset_key"] == "dunning"]
    assert [d["element_id"] for d in dunning] == ["raise_dunning"] * 4
    assert [d["outcome"] for d in dunning] == ["warn", "warn", "hold", "hold"]
    task = _only_task(api, "SO-12", "collections_task")
    assert task["candidate_groups"] == ["collections"]
    events = api.outbox_events(started["id"])
    assert events.count("dunning.level_changed") == 4
    paid = api.message(
        "payment_received",
        "SO-12",
        {"invoice_no": "INV-SO-12", "amount": "2260.00", "paid_on": "2027-03-01"},
    )
    assert paid.json["instance_status"] == "completed", paid.json
    assert api.open_tasks("SO-12") == []
    assert_balanced(api, "SO-12")


def test_an_overdue_erp_receivable_is_dunned_by_the_sweep_once_per_level(api: O2CApi) -> None:
    from datetime import UTC, datetime

    from engine.handlers.o2c import sweep_dunning

    rt = api.container.runtime
    rules = rt.rules.rules  # type: ignore[attr-defined]
    api.customer("C13")
    api.ok(
        "POST",
        "/receivables",
        json={
            "document_no": "ERP-INV-13",
            "customer_id": "C13",
            "amount": "500.00",
            "doc_date": "2026-10-01",
            "due_date": "2026-10-31",
        },
    )
    rt.clock = lambda: datetime(2026, 11, 21, tzinfo=UTC)  # 21 days past due: firm notice
    assert sweep_dunning(rt, rules) == 1
    assert sweep_dunning(rt, rules) == 0
    assert api.ok("GET", "/customers/C13/credit", who="carol")["dunning_level"] == 2
    body = api.ok("GET", "/outbox?event_type=dunning.level_changed", who="auditor")
    [event] = [e for e in body["items"] if e["payload"]["document_no"] == "ERP-INV-13"]
    assert (event["payload"]["previous_level"], event["payload"]["level"]) == (0, 2)
    # DOMAIN §1: the level change is an audit entry, with the dunning decision behind it.
    audit = api.ok("GET", "/audit?entity=receivable:ERP-INV-13", who="auditor")["items"]
    [entry] = [e for e in audit if e["action"] == "dunning_level_changed"]
    assert (entry["before"], entry["after"]["dunning_level"]) == ({"dunning_level": 0}, 2)
    decision = api.ok("GET", f"/decisions/{entry['after']['decision_id']}", who="auditor")
    assert decision["ruleset_key"] == "dunning" and decision["instance_id"] is None, decision


def test_an_account_put_on_hold_by_dunning_holds_shipping_for_the_credit_manager(
    api: O2CApi,
) -> None:
    """DOMAIN §1 and §2: at dunning level 3 the account is on hold, and shipping waits for the
    credit manager, even for an order released before (here waiting for QA meanwhile)."""
    from datetime import UTC, datetime

    from engine.handlers.o2c import sweep_dunning

    rt = api.container.runtime
    api.customer("C15")
    api.ok("POST", "/receivables", json={
        "document_no": "ERP-INV-15", "customer_id": "C15", "amount": "500.00",
        "doc_date": "2026-10-01", "due_date": "2026-10-31",
    })  # fmt: skip
    api.lot("LQ", status="quarantined")
    started = api.start("SO-15", "C15", [line("LQ")])
    qa = _only_task(api, "SO-15", "qa_release_task")
    rt.clock = lambda: datetime(2026, 12, 5, tzinfo=UTC)  # 35 days past due: final notice
    assert sweep_dunning(rt, rt.rules.rules) == 1  # type: ignore[attr-defined]
    assert api.ok("GET", "/customers/C15/credit", who="carol")["dunning_level"] == 3
    assert api.complete(qa["id"], "quinn", lot_released=True, reason="CoA ok").status_code == 200
    held = _only_task(api, "SO-15", "qa_release_task")
    assert held["candidate_groups"] == ["credit_manager"]
    last = [d for d in api.decisions(started["id"]) if d["ruleset_key"] == "shipment"][-1]
    assert last["outcome"] == "hold" and "credit_hold_open" in [
        f["rule_id"] for f in last["record"]["fired"]
    ], last
    assert "shipment_confirmed" not in _waits(api, started["id"])  # nothing sent to ship


def test_order_to_cash_deployed_together_with_procure_to_pay_ships_and_is_paid(
    container: Container,
) -> None:
    # One upload with both models: each process keeps its own elements (both have a
    # `wait_payment`, correlated by order_no in one and po_no in the other).
    files = [
        ("order_to_cash.bpmn", O2C_MODEL.read_bytes()),
        ("procure_to_pay.bpmn", P2P_MODEL.read_bytes()),
    ]
    admin = container.tokens.issue("admin", ["admin"])
    upload = (
        create_app(container=container)
        .test_client()
        .post(
            "/api/v1/definitions",
            data={"file": [(io.BytesIO(content), name) for name, content in files]},
            headers={"Authorization": f"Bearer {admin}"},
        )
    )
    assert upload.status_code == 201, upload.json
    api = make_api(container, deploy=False)
    api.customer("C1")
    api.lot("L1")
    assert api.start("SO-1", "C1", [line()])["version"] == 1
    _ship_ok(api, "SO-1")
    paid = api.message("payment_received", "SO-1", {"invoice_no": "INV-SO-1", "amount": "2260.00"})
    assert paid.json["instance_status"] == "completed", paid.json


def test_a_reason_longer_than_its_record_is_refused_on_the_form_and_on_cancellation(
    api: O2CApi,
) -> None:
    started, task = _held_for_credit(api, "C15", "SO-15")
    refused = api.complete(task["id"], "carol", approved=True, reason="r" * 401)
    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == ["reason"]
    cancel = api.message("order_cancelled", "SO-15", {"reason": "c" * 301})
    assert cancel.status_code == 422, cancel.json
    assert [e["field"] for e in cancel.json["errors"]] == ["payload.reason"]
    assert api.instance(started["id"])["status"] == "running"
    assert [t["id"] for t in api.open_tasks("SO-15")] == [task["id"]]


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("order_cancelled", {"reason": "r"}),
        ("order_changed", {"lines": [line("LQ", qty=11)]}),
    ],
)
def test_an_order_message_naming_another_order_is_refused_and_changes_neither(
    api: O2CApi, name: str, payload: dict
) -> None:
    """A message is routed by its correlation key; one whose payload names another order was
    sent to the wrong process, as a payment or shipment naming another order is."""
    api.customer("C1")
    api.lot("L1")
    api.lot("LQ", status="quarantined")
    other = api.start("SO-1", "C1", [line()])
    started = api.start("SO-C8", "C1", [line("LQ")])
    task = _only_task(api, "SO-C8", "qa_release_task")

    refused = api.message(name, "SO-C8", {**payload, "order_no": "SO-1"})

    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == ["payload.order_no"]
    assert "SO-C8" in refused.json["errors"][0]["message"]
    for instance_id in (started["id"], other["id"]):
        instance = api.instance(instance_id)
        assert instance["status"] == "running" and instance["incident"] is None
    assert [t["id"] for t in api.open_tasks("SO-C8")] == [task["id"]]
    assert _waits(api, other["id"]) == ["shipment_confirmed"]
    # Neither order was cancelled nor changed: both still count, at their entered value.
    credit = api.ok("GET", "/customers/C1/credit", who="carol")
    assert credit["exposure"]["open_orders"] == "4520.00", credit
    assert "order.cancelled" not in api.outbox_events(started["id"])
