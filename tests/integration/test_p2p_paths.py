"""Procure to pay through HTTP, one test per path (issue 5; DOMAIN §4, §5). Each checks the
journal entries balance, the decisions recorded and the events sent to the ERP."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import select

from domain.inventory import fefo_lots
from engine.store.tables import OutboxMessage
from tests.integration.p2p_support import (
    GTIN,
    SUPPLIER,
    P2PApi,
    erp_numbering_pos,
    make_api,
    udi,
)

LONG_DATED = date(2028, 12, 31)


@pytest.fixture
def api(container) -> P2PApi:
    p2p = make_api(container)
    p2p.supplier()
    return p2p


def small_requisition(api: P2PApi, req_no: str = "PR-2001", qty: int = 100) -> None:
    api.start(
        req_no,
        [
            {
                "line_no": 1,
                "sku": "SKU-1",
                "gtin": "06901234567892",
                "qty": qty,
                "unit_price": "35.00",
            }
        ],
    )


def test_requisition_under_ten_thousand_is_auto_approved_and_paid_on_the_discount_date(api):
    small_requisition(api)
    assert api.decided() == [("procurement", "pass")]
    assert "po.issued" in api.event_types() and "requisition.approved" in api.event_types()
    api.receive("GR-1", (1, "L2301", 100, LONG_DATED))
    assert api.purchase_order()["receipts"][0]["status"] == "quarantined"
    api.done("incoming_inspection", "quinn", result="pass")
    assert api.purchase_order()["receipts"][0]["status"] == "released"
    with api.container.runtime.uow(write=False) as uow:  # what the O2C shipment check reads
        [lot] = fefo_lots(uow.session, "06901234567892", api.today, 365)
        assert (lot.lot, lot.status, lot.qty_on_hand) == ("L2301", "released", 100)

    api.invoice("INV-1", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    discount_date = (api.today + timedelta(days=10)).isoformat()  # 2/10 net 30
    assert "payment.requested" not in api.event_types()
    api.wait_for_payment_date()
    [request] = api.payloads("payment.requested")
    assert request["amount"] == "3875.90" and request["discount"] == "79.10"
    assert request["pay_on"] == discount_date
    api.message(
        "payment_executed", {"invoice_no": "INV-1", "amount": "3875.90", "paid_on": discount_date}
    )

    assert api.instance()["status"] == "completed"
    assert api.journal() == [
        ("goods_receipt", {"1405": Decimal("3500.00"), "220202": Decimal("-3500.00")}),
        (
            "vendor_invoice",
            {
                "220202": Decimal("3500.00"),
                "22210101": Decimal("455.00"),
                "2202": Decimal("-3955.00"),
            },
        ),
        (
            "vendor_payment",
            {"2202": Decimal("3955.00"), "1002": Decimal("-3875.90"), "660302": Decimal("-79.10")},
        ),
    ]
    assert [key for key, _ in api.decided()] == [
        "procurement",
        "goods_receipt",
        "duplicate_invoice",
        "three_way_match_line",
        "three_way_match",
        "payment_discount",
    ]
    assert api.event_types().count("journal.posted") == 3
    for event in ("lot.quarantined", "lot.released", "payment.requested"):
        assert event in api.event_types()


def requisition(api: P2PApi, req_no: str, qty: int, price: str = "35.00", **variables) -> None:
    line = {"line_no": 1, "sku": "SKU-1", "gtin": "06901234567892", "qty": qty, "unit_price": price}
    api.start(req_no, [line], **variables)


def received_and_released(api: P2PApi, qty: int) -> None:
    api.receive("GR-1", (1, "L2301", qty, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")


def test_three_tier_chain_is_approved_in_order_and_the_requester_gets_403(api):
    requisition(api, "PR-3001", qty=20000)  # 700,000: dept manager, finance director, CFO
    [chain] = [d for d in api.decisions() if d["ruleset_key"] == "procurement"]
    assert chain["outcome"] == "hold"
    assert api.task("approve_requisition")["candidate_groups"] == ["dept_manager"]

    refused = api.complete("approve_requisition", "peter", decision="approve")
    assert refused.status_code == 403
    assert "peter requested this requisition" in refused.json["detail"]
    api.done("approve_requisition", "dana", decision="approve")
    assert api.task("approve_requisition")["candidate_groups"] == ["finance_director"]
    again = api.complete("approve_requisition", "dana", decision="approve")
    assert again.status_code == 403 and "already approved" in again.json["detail"]
    api.done("approve_requisition", "frank", decision="approve")
    assert "po.issued" not in api.event_types()
    api.done("approve_requisition", "cfo", decision="approve", comment="capex plan")

    [approved] = api.payloads("requisition.approved")
    assert approved["approvers"] == ["dana", "frank", "cfo"]
    assert approved["chain"] == ["dept_manager", "finance_director", "cfo"]
    assert api.event_types().count("po.issued") == 1
    assert api.purchase_order()["lines"][0]["qty"] == 20000
    assert api.decided().count(("segregation_of_duties", "pass")) == 3
    received_and_released(api, 20000)
    assert api.journal() == [
        ("goods_receipt", {"1405": Decimal("700000.00"), "220202": Decimal("-700000.00")})
    ]


@pytest.mark.parametrize(
    "extra", [{"approval_step": 5}, {"approval_chain": []}, {"req_no": "PR-OTHER"}]
)
def test_a_completion_carrying_more_than_its_form_is_refused_and_the_task_stays_open(api, extra):
    small_requisition(api, "PR-3101", qty=1000)  # 35,000: one dept_manager approval
    refused = api.complete("approve_requisition", "dora", decision="approve", **extra)
    assert refused.status_code == 422, refused.json
    [name] = extra
    assert refused.json["errors"] == [
        {"field": name, "message": "is not a field of this task's form"}
    ]
    assert api.instance()["variables"]["req_no"] == "PR-3101"
    api.done("approve_requisition", "dora", decision="approve")
    assert "po.issued" in api.event_types()


def test_rejection_in_the_middle_of_the_chain_ends_the_requisition(api):
    requisition(api, "PR-3002", qty=6000)  # 210,000: dept manager, then finance director
    api.done("approve_requisition", "dora", decision="approve")
    api.done("approve_requisition", "frank", decision="reject", comment="not budgeted")

    assert api.instance()["status"] == "completed"
    [rejected] = api.payloads("requisition.rejected")
    assert rejected["rejected_by"] == "frank" and rejected["group"] == "finance_director"
    assert "po.issued" not in api.event_types()
    assert "requisition.approved" not in api.event_types()
    assert api.journal() == []
    assert api.decided() == [("procurement", "hold")] + [("segregation_of_duties", "pass")] * 2


def test_short_dated_lot_is_rejected_back_to_the_vendor_at_receipt(api):
    small_requisition(api, "PR-4001")
    short = api.today + timedelta(days=200)  # the PO minimum is 365 days (ruleset default)
    api.receive("GR-1", (1, "L-SHORT", 100, short))

    [receipt] = api.purchase_order()["receipts"]
    assert receipt["status"] == "rejected" and "under the PO minimum of 365" in receipt["reason"]
    assert api.decided()[-1] == ("goods_receipt", "reject")
    [returned] = api.payloads("lot.rejected")
    assert returned["lot"] == "L-SHORT"
    assert "lot.quarantined" not in api.event_types()
    assert api.open_tasks() == [] and api.journal() == []
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_goods"]

    api.receive("GR-2", (1, "L-GOOD", 100, LONG_DATED))
    assert api.task("incoming_inspection")["candidate_groups"] == ["qa_manager"]
    assert len(api.journal()) == 1


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("udi", 10**30),
        ("udi", {"ai": "01"}),
        ("udi", "U" * 201),
        ("lot", "L" * 65),
        ("receipt_no", "R" * 65),
        ("receipt_no", 17),
    ],
)
def test_a_receipt_field_not_text_or_past_its_column_is_refused_naming_it(api, field, value):
    small_requisition(api, "PR-4002")
    line = {"line_no": 1, "qty": 100, "gtin": GTIN, "lot": "L-1"}
    line |= {"expiry_date": LONG_DATED.isoformat(), "udi": udi("L-1", LONG_DATED)}
    payload = {"po_no": api.po_no, "receipt_no": "GR-1", "lines": [line]}
    (payload if field == "receipt_no" else line)[field] = value
    message = {"name": "goods_received", "correlation_key": api.po_no, "payload": payload}
    refused = api.call("POST", "/messages", json=message)
    assert refused.status_code == 422, refused.json
    where = "payload.receipt_no" if field == "receipt_no" else f"payload.lines[0].{field}"
    assert [e["field"] for e in refused.json["errors"]] == [where]
    # Nothing of it was kept: the PO still waits for its goods, and a corrected one is taken.
    assert api.purchase_order()["receipts"] == []
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_goods"]
    api.receive("GR-1", (1, "L-1", 100, LONG_DATED))
    assert api.task("incoming_inspection")["candidate_groups"] == ["qa_manager"]


def _bad_invoice(change: str) -> tuple[dict, str]:
    invoice = {"invoice_no": "INV-7", "tax_amount": "455.00", "total": "3955.00"}
    invoice |= {"lines": [{"line_no": 1, "qty": 100, "unit_price": "35.00"}]}
    line = invoice["lines"][0]
    where = {
        "negative qty": "lines[0].qty",
        "negative tax": "tax_amount",
        "long number": "invoice_no",
        "entered_by object": "entered_by",
        "line twice": "lines[1].line_no",
        "no lines": "lines",
        "date as number": "invoice_date",
    }[change]
    if change == "negative qty":
        line["qty"] = -100
    elif change == "negative tax":
        invoice["tax_amount"] = "-455.00"
    elif change == "long number":
        invoice["invoice_no"] = "I" * 65
    elif change == "entered_by object":
        invoice["entered_by"] = {"name": "amy"}
    elif change == "line twice":
        invoice["lines"] = [line, dict(line)]
    elif change == "no lines":
        invoice["lines"] = []
    elif change == "date as number":
        invoice["invoice_date"] = 20261123
    return invoice, f"payload.{where}"


@pytest.mark.parametrize(
    "change",
    [
        "negative qty",
        "negative tax",
        "long number",
        "entered_by object",
        "line twice",
        "no lines",
        "date as number",
    ],
)
def test_an_invoice_that_cannot_be_matched_or_kept_is_refused_naming_the_field(api, change):
    small_requisition(api, "PR-4101")
    api.receive("GR-1", (1, "L-1", 100, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    invoice, field = _bad_invoice(change)
    invoice.setdefault("invoice_date", api.today.isoformat())
    message = {"name": "vendor_invoice", "correlation_key": api.po_no}
    refused = api.call("POST", "/messages", json={**message, "payload": invoice})
    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == [field]
    assert api.instance()["status"] == "running"
    # Nothing of it was kept: the corrected invoice is matched and posted.
    api.invoice("INV-7", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    assert [kind for kind, _ in api.journal()] == ["goods_receipt", "vendor_invoice"]


@pytest.mark.parametrize(
    ("lines", "field"),
    [
        ([], "payload.lines"),
        ([{"qty": 0}], "payload.lines[0].qty"),
        ([{"line_no": 0}], "payload.lines[0].line_no"),
        ([{}, {}], "payload.lines[1].line_no"),
    ],
)
def test_a_receipt_without_lines_or_with_a_line_twice_is_refused_naming_it(api, lines, field):
    small_requisition(api, "PR-4102")
    line = {"line_no": 1, "qty": 100, "gtin": GTIN, "lot": "L-1"}
    line |= {"expiry_date": LONG_DATED.isoformat(), "udi": udi("L-1", LONG_DATED)}
    payload = {"po_no": api.po_no, "receipt_no": "GR-1", "lines": [line | c for c in lines]}
    message = {"name": "goods_received", "correlation_key": api.po_no, "payload": payload}
    refused = api.call("POST", "/messages", json=message)
    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == [field]
    assert api.purchase_order()["receipts"] == []


@pytest.mark.parametrize(
    ("payment", "field"),
    [
        ({"amount": "4000.00"}, "payload.amount"),  # over the invoice: a negative discount
        ({"amount": "3875.905"}, "payload.amount"),
        ({"amount": "3875.90", "invoice_no": "INV-OTHER"}, "payload.invoice_no"),
        ({"amount": "3875.90", "paid_on": "x" * 500}, "payload.paid_on"),
    ],
)
def test_a_payment_that_cannot_be_posted_is_refused_and_the_invoice_stays_unpaid(
    api, payment, field
):
    small_requisition(api, "PR-4103")
    api.receive("GR-1", (1, "L-1", 100, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    api.invoice("INV-1", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    api.wait_for_payment_date()
    message = {"name": "payment_executed", "correlation_key": api.po_no}
    refused = api.call("POST", "/messages", json={**message, "payload": payment})
    assert refused.status_code == 422, refused.json
    assert [e["field"] for e in refused.json["errors"]] == [field]
    assert api.instance()["status"] == "running"
    api.message("payment_executed", {"invoice_no": "INV-1", "amount": "3875.90"})
    assert api.instance()["status"] == "completed"


def test_partial_receipt_waits_for_the_rest_before_the_invoice(api):
    small_requisition(api, "PR-4002")
    api.receive("GR-1", (1, "L1", 60, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_goods"]
    assert api.purchase_order()["lines"][0]["qty_received"] == 60

    api.receive("GR-2", (1, "L2", 40, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_invoice"]
    assert api.purchase_order()["lines"][0]["qty_received"] == 100
    assert api.journal() == [
        ("goods_receipt", {"1405": Decimal("2100.00"), "220202": Decimal("-2100.00")}),
        ("goods_receipt", {"1405": Decimal("1400.00"), "220202": Decimal("-1400.00")}),
    ]
    assert api.event_types().count("lot.quarantined") == 2
    assert api.event_types().count("lot.released") == 2
    assert api.decided().count(("goods_receipt", "pass")) == 2


def test_a_receipt_over_the_po_quantity_is_refused_naming_the_line_and_the_rest_is_taken(api):
    small_requisition(api, "PR-4010")  # 100 ordered
    api.receive("GR-1", (1, "L1", 60, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")

    errors = refused(api, "goods_received", _receipt("GR-2", (1, "L2", 50, LONG_DATED)))
    assert errors == [
        {
            "field": "payload.lines[0].qty",
            "message": "would bring PO line 1 to 110 received, over the 100 ordered",
        }
    ]
    # Two lots of one line in one receipt are counted together.
    both = _receipt("GR-2", (1, "L2", 30, LONG_DATED), (1, "L3", 11, LONG_DATED))
    assert [e["field"] for e in refused(api, "goods_received", both)] == ["payload.lines[1].qty"]

    # Nothing of either was kept: no stock, no GR/IR, and the PO still waits for 40.
    assert api.purchase_order()["lines"][0]["qty_received"] == 60
    assert [kind for kind, _ in api.journal()] == ["goods_receipt"]
    assert api.event_types().count("lot.quarantined") == 1
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_goods"]
    api.receive("GR-2", (1, "L2", 40, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_invoice"]


def test_a_returned_lot_does_not_count_against_the_po_so_its_replacement_is_taken(api):
    small_requisition(api, "PR-4011")
    api.receive("GR-1", (1, "L-BAD", 100, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="fail", comment="seal broken")

    api.receive("GR-2", (1, "L-NEW", 100, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")

    assert api.purchase_order()["lines"][0]["qty_received"] == 100
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_invoice"]


def _receipt(receipt_no: str, *lots: tuple[int, str, int, date]) -> dict:
    lines = [
        {"line_no": n, "qty": qty, "gtin": GTIN, "lot": lot}
        | {"expiry_date": expiry.isoformat(), "udi": udi(lot, expiry)}
        for n, lot, qty, expiry in lots
    ]
    return {"receipt_no": receipt_no, "lines": lines}


def test_a_receipt_step_that_fails_halfway_leaves_no_history_of_decisions_it_rolled_back(
    api, monkeypatch
):
    from engine.store.tables import DecisionRecord
    from rules.service import RulesService

    small_requisition(api, "PR-4012")
    real = RulesService.evaluate
    receipts = []

    def fails_on_the_second_lot(self, key, *args, **kwargs):
        if key == "goods_receipt":
            receipts.append(key)
            if len(receipts) % 2 == 0:  # the second lot, in the first run and the guarded one
                raise RuntimeError("rules service unavailable")
        return real(self, key, *args, **kwargs)

    monkeypatch.setattr(RulesService, "evaluate", fails_on_the_second_lot)
    api.receive("GR-1", (1, "L1", 50, LONG_DATED), (1, "L2", 50, LONG_DATED))

    instance = api.instance()
    assert instance["status"] == "incident"
    named = [
        e["details"]["decision_id"]
        for e in instance["history"]
        if e["type"] == "decision" and e["element_id"] == "check_receipt"
    ]
    # The first lot's decision went with the failed step; no history event may name it.
    assert named == []
    with api.container.runtime.uow(write=False) as uow:
        assert uow.session.query(DecisionRecord).filter_by(ruleset_key="goods_receipt").count() == 0


def test_inspection_fail_returns_the_lot_to_the_vendor(api):
    from domain.inventory import get_lot

    small_requisition(api, "PR-4003")
    api.receive("GR-1", (1, "L-BAD", 100, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="fail", comment="seal broken")

    [receipt] = api.purchase_order()["receipts"]
    assert receipt["status"] == "returned" and receipt["reason"] == "seal broken"
    with api.container.runtime.uow(write=False) as uow:
        lot = get_lot(uow.session, "06901234567892", "L-BAD")
        assert lot.status == "returned" and lot.qty_on_hand == 0
    [returned] = api.payloads("lot.returned")
    assert returned["reason"] == "seal broken"
    assert "lot.released" not in api.event_types()
    assert api.journal() == [
        ("goods_receipt", {"1405": Decimal("3500.00"), "220202": Decimal("-3500.00")}),
        ("goods_return", {"220202": Decimal("3500.00"), "1405": Decimal("-3500.00")}),
    ]
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_goods"]


@pytest.mark.parametrize(
    ("verdict", "status", "on_hand"), [("pass", "released", 100), ("fail", "released", 40)]
)
def test_a_released_lot_received_again_waits_in_quarantine_until_its_new_units_pass(
    api, verdict, status, on_hand
):
    """DOMAIN §4: received units wait for inspection even when their lot was released before;
    a failed second receipt returns only its own units."""
    from domain.inventory import fefo_lots, get_lot

    small_requisition(api, "PR-4010")  # 100 ordered
    api.receive("GR-1", (1, "L-AGAIN", 40, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    api.receive("GR-2", (1, "L-AGAIN", 60, LONG_DATED))
    with api.container.runtime.uow(write=False) as uow:
        lot = get_lot(uow.session, "06901234567892", "L-AGAIN")
        assert (lot.status, lot.qty_on_hand) == ("quarantined", 100)
        assert fefo_lots(uow.session, "06901234567892", api.today, 365) == []  # not shippable
    api.done("incoming_inspection", "quinn", result=verdict, comment="seal broken")
    with api.container.runtime.uow(write=False) as uow:
        lot = get_lot(uow.session, "06901234567892", "L-AGAIN")
        assert (lot.status, lot.qty_on_hand) == (status, on_hand)


def test_units_received_into_a_recalled_lot_never_become_shippable(api):
    from domain.inventory import get_lot

    lot = {"expiry_date": LONG_DATED.isoformat(), "status": "recalled", "unit_cost": "35.00"}
    api.ok("PUT", "/lots/06901234567892/L-RECALLED", json=lot)
    small_requisition(api, "PR-4020")
    api.receive("GR-1", (1, "L-RECALLED", 100, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    with api.container.runtime.uow(write=False) as uow:
        assert get_lot(uow.session, "06901234567892", "L-RECALLED").status == "recalled"
    [receipt] = api.purchase_order()["receipts"]
    assert receipt["status"] == "rejected" and "recall" in receipt["reason"], receipt
    assert "lot.released" not in api.event_types()


def test_a_sub_cent_unit_price_is_received_and_matched_at_its_full_precision(api):
    """A price of 0.125 a unit was stored as 0.12: the receipt posted 120.00 for 125.00 of
    goods and the matching invoice was blocked as a 4 % price variance."""
    line = {"line_no": 1, "sku": "SKU-1", "gtin": "06901234567892", "qty": 1000}
    api.start("PR-6001", [{**line, "unit_price": "0.125"}])
    received_and_released(api, 1000)
    api.invoice("INV-6001", [(1, 1000, "0.125")], tax_amount="0.00", total="125.00")
    [po_line] = api.purchase_order()["lines"]
    assert Decimal(po_line["unit_price"]) == Decimal("0.125"), po_line
    assert [i["status"] for i in api.purchase_order()["invoices"]] == ["posted"]
    assert api.journal()[:2] == [
        ("goods_receipt", {"1405": Decimal("125.00"), "220202": Decimal("-125.00")}),
        ("vendor_invoice", {"220202": Decimal("125.00"), "2202": Decimal("-125.00")}),
    ]


def test_invoice_lines_with_half_cent_amounts_post_a_balanced_entry(api):
    line = {"sku": "SKU-1", "gtin": "06901234567892", "qty": 1, "unit_price": "10.00"}
    api.start("PR-6002", [{**line, "line_no": 1}, {**line, "line_no": 2}])
    api.receive("GR-1", (1, "L2301", 1, LONG_DATED), (2, "L2302", 1, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    api.done("incoming_inspection", "quinn", result="pass")
    api.invoice("INV-6002", [(1, 1, "10.005"), (2, 1, "10.005")], tax_amount="0.00", total="20.01")
    assert api.instance()["status"] != "incident", api.instance()["incident"]
    kinds = [kind for kind, _ in api.journal()]  # journal() asserts every entry balances
    assert kinds.count("vendor_invoice") == 1, kinds


def test_a_po_billed_in_two_invoices_pays_both_and_closes_only_after_the_second(api):
    small_requisition(api, "PR-5010")  # 100 at 35.00
    received_and_released(api, 100)
    api.invoice("INV-A", [(1, 60, "35.00")], tax_amount="273.00", total="2373.00")
    # The vendor's second invoice arrives while the first waits for its payment date: it waits.
    second = {"invoice_no": "INV-B", "invoice_date": api.today.isoformat(), "tax_amount": "182.00"}
    second |= {"total": "1582.00", "lines": [{"line_no": 1, "qty": 40, "unit_price": "35.00"}]}
    message = {"name": "vendor_invoice", "correlation_key": api.po_no}
    buffered = api.call("POST", "/messages", json={**message, "payload": second})
    assert buffered.status_code == 202, buffered.json

    api.wait_for_payment_date()
    [first] = api.payloads("payment.requested")
    api.message("payment_executed", {"invoice_no": "INV-A", "amount": first["amount"]})

    # Paid, but 40 units are not billed yet: the PO stays open and INV-B is taken up at once.
    assert api.instance()["status"] == "running"
    assert api.purchase_order()["status"] != "closed"
    assert [i["status"] for i in api.purchase_order()["invoices"]] == ["paid", "posted"]
    api.wait_for_payment_date()
    [_, then] = api.payloads("payment.requested")
    assert then["invoice_no"] == "INV-B"
    api.message("payment_executed", {"invoice_no": "INV-B", "amount": then["amount"]})

    assert api.instance()["status"] == "completed"
    assert api.purchase_order()["status"] == "closed"
    assert [kind for kind, _ in api.journal()] == [
        "goods_receipt",
        "vendor_invoice",
        "vendor_payment",
        "vendor_invoice",
        "vendor_payment",
    ]
    assert [outcome for key, outcome in api.decided() if key == "three_way_match"] == [
        "pass",
        "pass",
    ]


def test_a_po_billed_short_is_closed_by_the_erp_with_its_unbilled_lines_named(api):
    small_requisition(api, "PR-5011")  # 100 at 35.00
    received_and_released(api, 100)
    api.invoice("INV-S", [(1, 60, "35.00")], tax_amount="273.00", total="2373.00")
    api.wait_for_payment_date()
    [first] = api.payloads("payment.requested")
    api.message("payment_executed", {"invoice_no": "INV-S", "amount": first["amount"]})
    assert api.instance()["status"] == "running"  # waiting for an invoice for the other 40
    close = {"name": "po_closed", "correlation_key": api.po_no, "payload": {}}
    refused = api.call("POST", "/messages", json=close)
    assert refused.status_code == 422
    assert [e["field"] for e in refused.json["errors"]] == ["payload.reason"]
    assert api.instance()["status"] == "running"

    api.message("po_closed", {"reason": "vendor cannot supply the rest"})

    assert api.instance()["status"] == "completed"
    assert api.purchase_order()["status"] == "closed"
    [closed] = api.payloads("po.closed")
    assert closed["lines"] == [{"line_no": 1, "ordered": 100, "received": 100, "billed": 60}]
    assert closed["reason"] == "vendor cannot supply the rest"
    late = {"name": "vendor_invoice", "correlation_key": api.po_no, "payload": {}}
    assert api.call("POST", "/messages", json=late).status_code == 202  # buffered, never taken
    assert [kind for kind, _ in api.journal()] == [
        "goods_receipt",
        "vendor_invoice",
        "vendor_payment",
    ]


def test_closing_a_po_is_refused_while_an_invoice_is_open(api):
    requisition(api, "PR-5012", qty=200)  # 7,000: auto-approved, PO issued
    close = {"name": "po_closed", "correlation_key": api.po_no}
    close["payload"] = {"po_no": api.po_no, "reason": "not needed"}
    received_and_released(api, 200)
    api.invoice("INV-5012", [(1, 200, "45.00")], tax_amount="1170.00", total="10170.00")
    assert "invoice.blocked" in api.event_types()

    refused = api.call("POST", "/messages", json=close)

    assert refused.status_code == 422
    assert "invoice INV-5012 is still in progress" in refused.json["errors"][0]["message"]
    assert api.instance()["status"] == "running"
    assert api.purchase_order()["status"] != "closed"
    assert "po.closed" not in api.event_types()
    assert any(t["element_id"] == "resolve_exception" for t in api.open_tasks())


def test_closing_a_po_is_refused_before_it_is_issued(api):
    requisition(api, "PR-5013", qty=400)  # 14,000: waits for its approval chain
    close = {"name": "po_closed", "correlation_key": api.po_no}
    close["payload"] = {"po_no": api.po_no, "reason": "not needed"}

    refused = api.call("POST", "/messages", json=close)

    assert refused.status_code == 422
    assert "no PO has been issued yet" in refused.json["errors"][0]["message"]
    assert [t["element_id"] for t in api.open_tasks()] == ["approve_requisition"]


def test_price_variance_blocks_payment_until_the_ap_manager_accepts_it(api):
    requisition(api, "PR-5001", qty=200)  # 7,000 at 35.00
    received_and_released(api, 200)
    api.invoice("INV-5001", [(1, 200, "45.00")], tax_amount="1170.00", total="10170.00")

    [blocked] = api.payloads("invoice.blocked")
    assert blocked["variance"] == "2000.00" and any("45.00" in r for r in blocked["reasons"])
    assert ("three_way_match_line", "hold") in api.decided()
    assert "payment.requested" not in api.event_types()
    assert api.journal()[-1] == (
        "vendor_invoice",
        {
            "220202": Decimal("7000.00"),
            "640102": Decimal("2000.00"),
            "22210101": Decimal("1170.00"),
            "2202": Decimal("-10170.00"),
        },
    )
    refused = api.complete("resolve_exception", "amy", resolution="accept")
    assert refused.status_code == 403 and "amy entered this invoice" in refused.json["detail"]

    api.done("resolve_exception", "alex", resolution="accept", comment="price rise agreed")
    assert ("invoice_exception", "hold") in api.decided()  # 2,000 is over the AP manager limit
    assert "invoice.released" not in api.event_types()
    assert api.task("approve_variance")["candidate_groups"] == ["ap_manager"]
    api.done("approve_variance", "mark", decision="approve")

    [released] = api.payloads("invoice.released")
    assert released["released_by"] == "mark"
    api.wait_for_payment_date()
    [request] = api.payloads("payment.requested")
    assert request["amount"] == "9966.60"  # 2 % of 10,170.00 taken on the discount date
    api.message(
        "payment_executed",
        {"invoice_no": "INV-5001", "amount": "9966.60", "paid_on": request["pay_on"]},
    )
    assert api.instance()["status"] == "completed"
    assert api.journal()[-1] == (
        "vendor_payment",
        {"2202": Decimal("10170.00"), "1002": Decimal("-9966.60"), "660302": Decimal("-203.40")},
    )


def test_over_billed_quantity_asks_for_a_credit_note_and_matches_the_corrected_invoice(api):
    small_requisition(api, "PR-5002")
    received_and_released(api, 100)
    api.invoice("INV-5002", [(1, 110, "35.00")], tax_amount="500.50", total="4350.50")
    assert "invoice.blocked" in api.event_types()
    api.done("resolve_exception", "alex", resolution="credit_note", comment="110 billed, 100 came")

    assert "invoice.credit_note_requested" in api.event_types()
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_invoice"]
    api.invoice("INV-5002-C", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    api.wait_for_payment_date()
    assert "payment.requested" in api.event_types()
    kinds = [kind for kind, _ in api.journal()]
    assert kinds == ["goods_receipt", "vendor_invoice", "vendor_invoice.reversal", "vendor_invoice"]
    ledger: dict[str, Decimal] = {}
    for _, amounts in api.journal():
        for account, amount in amounts.items():
            ledger[account] = ledger.get(account, Decimal(0)) + amount
    assert ledger["220202"] == 0 and ledger["2202"] == Decimal("-3955.00")
    invoices = {i["invoice_no"]: i["status"] for i in api.purchase_order()["invoices"]}
    assert invoices == {"INV-5002": "superseded", "INV-5002-C": "posted"}
    assert api.decided().count(("three_way_match", "hold")) == 1
    assert api.decided().count(("three_way_match", "pass")) == 1


def test_duplicate_invoice_with_other_case_and_zeros_is_caught_across_the_year_end(api):
    small_requisition(api, "PR-6001")
    received_and_released(api, 100)
    api.invoice(
        "INV-0042",
        [(1, 100, "35.00")],
        tax_amount="455.00",
        total="3955.00",
        invoice_date=date(2025, 12, 30),
    )
    first = api.instance_id

    small_requisition(api, "PR-6002", qty=50)
    received_and_released(api, 50)
    api.invoice(
        "inv-00042",
        [(1, 50, "35.00")],
        tax_amount="227.50",
        total="1977.50",
        invoice_date=date(2026, 1, 2),
    )
    assert api.instance_id != first
    assert api.decided()[-1] == ("duplicate_invoice", "hold")
    review = api.task("review_duplicate")
    assert review["candidate_groups"] == ["ap_manager"]
    assert api.purchase_order()["invoices"][0]["status"] == "duplicate_hold"
    api.done("review_duplicate", "mark", verdict="duplicate")

    assert api.purchase_order()["invoices"][0]["status"] == "rejected"
    assert "invoice.rejected" in api.event_types()
    assert [kind for kind, _ in api.journal()] == ["goods_receipt"]
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_invoice"]


def test_duplicate_check_reads_only_the_suppliers_candidate_invoices(api):
    from domain import procurement as p2p
    from rules.procurement import normalise_invoice_number

    small_requisition(api, "PR-5009")
    with api.container.runtime.uow() as uow:
        po = p2p.require_po(uow.session, api.po_no)

        def invoice(number: str, gross: str) -> p2p.VendorInvoice:
            return p2p.register_invoice(
                uow.session,
                po,
                invoice_no=number,
                normalised_no=normalise_invoice_number(number),
                invoice_date=api.today,
                lines=[(1, 1, Decimal(gross))],
                tax_amount=Decimal(0),
                gross_total=Decimal(gross),
                entered_by="amy",
                instance_id=api.instance_id,
                now=api.clock.now,
            )

        unrelated = [invoice(f"INV-{n}", f"{100 + n}.00") for n in range(30)]
        same_number = invoice("inv-0077", "1.00")
        same_amount = invoice("INV-OTHER", "3955.00")
        new = invoice("INV-77", "3955.00")

        candidates = p2p.prior_invoices(uow.session, new)

    # A supplier's years of invoices are not read for each new one: only the possible twins.
    assert {row.id for row in candidates} == {same_number.id, same_amount.id}
    assert not {row.id for row in unrelated} & {row.id for row in candidates}


def test_blocked_supplier_is_never_paid(api):
    from engine.scheduler import sweep_timers

    requisition(api, "PR-7001", qty=100, payment_recheck_after="PT0.1S")
    received_and_released(api, 100)
    api.supplier(blocked=True)
    api.invoice("INV-7001", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    assert ("three_way_match", "hold") in api.decided()
    # Even when AP clears the invoice itself, the supplier block keeps the money in the bank.
    api.done("resolve_exception", "alex", resolution="accept")
    assert "invoice.released" in api.event_types()
    api.wait_for_payment_date()
    assert "payment.requested" not in api.event_types()
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_recheck"]

    api.clock.advance(days=11)
    assert sweep_timers(api.container.runtime) == 1
    assert "payment.requested" not in api.event_types()
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_recheck"]
    assert [kind for kind, _ in api.journal()] == ["goods_receipt", "vendor_invoice"]


def test_a_payment_rechecked_daily_for_months_keeps_its_state_small_and_is_paid_once_unblocked(
    api,
):
    from engine.scheduler import sweep_timers
    from engine.store.tables import Instance

    def stored_bytes() -> int:
        with api.container.runtime.uow(write=False) as uow:
            return len(uow.session.get(Instance, api.instance_id).state)

    requisition(api, "PR-7002", qty=100, payment_recheck_after="P1D")
    received_and_released(api, 100)
    api.supplier(blocked=True)
    api.invoice("INV-7002", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    api.done("resolve_exception", "alex", resolution="accept")  # the supplier block stays
    api.wait_for_payment_date()
    sizes = {}
    for day in range(1, 241):
        api.clock.advance(days=1, seconds=1)
        assert sweep_timers(api.container.runtime) == 1
        sizes[day] = stored_bytes()
    # Each recheck used to add four finished tasks to the stored tree, for good: the second
    # four months would have stored up to twice as much as the first.
    first, second = [max(sizes[d] for d in days) for days in (range(1, 121), range(121, 241))]
    assert second <= first * 1.05, (first, second)

    api.supplier(blocked=False)
    api.clock.advance(days=1, seconds=1)
    assert sweep_timers(api.container.runtime) == 1
    [request] = api.payloads("payment.requested")
    api.message(
        "payment_executed",
        {"invoice_no": "INV-7002", "amount": request["amount"], "paid_on": request["pay_on"]},
    )
    assert api.instance()["status"] == "completed"
    assert [kind for kind, _ in api.journal()] == [
        "goods_receipt",
        "vendor_invoice",
        "vendor_payment",
    ]
    # The dropped rounds are still in the instance's history.
    fired = [e for e in api.instance()["history"] if e["type"] == "timer_fired"]
    assert len(fired) == 242


def test_segregation_of_duties_still_applies_to_a_delegate(api):
    requisition(api, "PR-3003", qty=6000)  # dept manager, then finance director
    api.done("approve_requisition", "dora", decision="approve")
    vacation = {
        "delegate": "peter",
        "from": (api.today - timedelta(days=1)).isoformat(),
        "to": (api.today + timedelta(days=14)).isoformat(),
    }
    bad = api.call("POST", "/users/frank/delegations", who="frank", json={**vacation, "to": "x"})
    assert bad.status_code == 400 and bad.json["errors"][0]["field"] == "to"
    api.ok("POST", "/users/frank/delegations", who="frank", json=vacation)
    task = api.task("approve_requisition")
    api.ok("POST", f"/tasks/{task['id']}/claim", who="frank")
    api.ok("POST", f"/tasks/{task['id']}/delegate", who="frank", json={"user": "peter"})

    refused = api.complete("approve_requisition", "peter", decision="approve")
    assert refused.status_code == 403
    assert "peter (for frank) requested this requisition" in refused.json["detail"]
    assert "po.issued" not in api.event_types()
    assert api.journal() == []

    # An admin who takes the task over acts for nobody: the delegation ended with it.
    api.ok("POST", f"/tasks/{task['id']}/claim", who="admin")
    assert api.complete("approve_requisition", "admin", decision="approve").status_code == 200
    assert "po.issued" in api.event_types()


def test_same_amount_within_days_is_reviewed_and_cleared_by_the_ap_manager(api):
    small_requisition(api, "PR-6003")
    received_and_released(api, 100)
    api.invoice("INV-A", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")

    small_requisition(api, "PR-6004")
    received_and_released(api, 100)
    api.invoice("INV-B", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    [review] = [d for d in api.decisions() if d["ruleset_key"] == "duplicate_invoice"]
    assert review["record"]["fired"][0]["rule_id"] == "same_amount_within_window"
    assert api.complete("review_duplicate", "amy", verdict="not_duplicate").status_code == 403
    api.done("review_duplicate", "mark", verdict="not_duplicate")
    api.wait_for_payment_date()
    assert ("three_way_match", "pass") in api.decided()
    assert "payment.requested" in api.event_types()
    assert [kind for kind, _ in api.journal()] == ["goods_receipt", "vendor_invoice"]


def test_unusable_requisition_is_refused_naming_the_field_not_left_as_an_incident(api):
    api.start("PR-9001", [{"line_no": 1, "sku": "SKU-1", "qty": 0, "unit_price": "35.00"}])

    instance = api.instance()
    assert instance["status"] == "completed" and instance["incident"] is None
    [refused] = api.payloads("requisition.rejected")
    assert refused["errors"] == [
        {"field": "requisition.lines[0].qty", "message": "must be a positive integer"}
    ]
    assert api.decided() == [] and api.journal() == []


def _refusal_errors(api: P2PApi, req_no: str, lines: list[dict], **requisition) -> list[dict]:
    """Start a requisition through the ERP hook; the errors its refusal sent back."""
    body = {"req_no": req_no, "requester": "peter", "supplier_id": SUPPLIER, "currency": "CNY"}
    body |= {"lines": lines, **requisition}
    started = api.ok(
        "POST",
        "/processes/procure_to_pay/instances",
        json={"business_key": req_no, "variables": {"requisition": body}},
        headers={"Idempotency-Key": f"again-{req_no}-{len(str(requisition))}"},
    )
    api.instance_id = started["id"]
    [rejected] = api.payloads("requisition.rejected")
    return rejected["errors"]


PR_LINE = {"line_no": 1, "sku": "SKU-1", "qty": 10, "unit_price": "35.00"}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"sku": ["x"]}, "requisition.lines[0].sku"),
        ({"qty": 10**20}, "requisition.lines[0].qty"),
        ({"unit_price": "1" + "0" * 25}, "requisition.lines[0].unit_price"),
        # Stored to 4 decimals: a fifth would be rounded away without a word.
        ({"unit_price": "0.12345"}, "requisition.lines[0].unit_price"),
        # Under the amount limit line by line, over it in total: it went to an incident (500
        # from 9e11, when even the start's answer could not be built).
        ({"qty": 10, "unit_price": "99999999999"}, "requisition.lines"),
        ({"gtin": "06901234567893"}, "requisition.lines[0].gtin"),
        ({"tax_rate": "-5"}, "requisition.lines[0].tax_rate"),
    ],
)
def test_a_requisition_line_out_of_range_is_refused_naming_it(api, change, field):
    errors = _refusal_errors(api, "PR-RANGE", [{**PR_LINE, **change}])

    assert [e["field"] for e in errors] == [field]
    assert api.journal() == []


def _start_refused(api: P2PApi, req_no: str, **requisition) -> list[dict]:
    """Start a requisition the ERP hook must refuse outright; the errors of its 422."""
    body = {"req_no": req_no, "requester": "peter", "supplier_id": SUPPLIER, "currency": "CNY"}
    response = api.call(
        "POST",
        "/processes/procure_to_pay/instances",
        json={"business_key": req_no, "variables": {"requisition": body | requisition}},
        headers={"Idempotency-Key": f"again-{req_no}-{len(str(requisition))}"},
    )
    assert response.status_code == 422, response.json
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return response.json["errors"]


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("approval_escalation_cycle", "every day", "is not an ISO 8601 cycle such as R3/P1D"),
        ("approval_escalation_cycle", "R/PT0S", "must wait some time between its rounds"),
        ("approval_escalation_cycle", 3, "must be an ISO 8601 cycle such as R3/P1D"),
        ("payment_recheck_after", "P99999Y", "is not an ISO 8601 duration such as P1D"),
        ("payment_recheck_after", "", "must be a duration"),
        ("payment_recheck_after", "PT0S", "must be longer than zero"),
    ],
)
def test_a_timer_cadence_given_at_start_that_no_timer_can_read_is_refused_naming_it(
    api, name, value, message
):
    requisition = {"req_no": "PR-CAD", "requester": "peter", "cost_center": "CC-100"}
    requisition |= {"category": "consumables", "supplier_id": SUPPLIER, "currency": "CNY"}
    requisition["lines"] = [PR_LINE]
    body = {"business_key": "PR-CAD", "variables": {"requisition": requisition, name: value}}
    response = api.call("POST", "/processes/procure_to_pay/instances", json=body)

    assert response.status_code == 422, response.json
    assert response.json["errors"] == [{"field": f"variables.{name}", "message": message}]
    assert api.ok("GET", "/instances?business_key=PR-CAD")["items"] == []
    api.start("PR-CAD", [PR_LINE])  # without it, the model's cadence applies
    assert api.instance()["status"] == "running"


def _rejections_of(api: P2PApi, req_no: str) -> list[dict]:
    with api.container.runtime.uow(write=False) as uow:
        rows = uow.session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "requisition.rejected")
        ).all()
        return [row.payload for row in rows if row.payload.get("req_no") == req_no]


def test_a_second_requisition_cannot_take_another_requisitions_po_number(api):
    api.start("PR-FIRST", [PR_LINE])
    first_po = api.po_no

    errors = _start_refused(api, "PR-SECOND", lines=[PR_LINE], po_no=first_po)

    assert errors == [
        {
            "field": "variables.requisition.po_no",
            "message": "is already the PO of requisition PR-FIRST",
        }
    ]
    waiting = api.ok("GET", f"/purchase-orders/{first_po}")
    assert waiting["req_no"] == "PR-FIRST"
    assert api.ok("GET", "/instances?business_key=PR-SECOND")["items"] == []


def test_the_same_requisition_started_twice_is_refused_the_second_time_without_rejecting_it(api):
    api.start("PR-TWICE", [PR_LINE])
    first = api.instance_id

    errors = _start_refused(api, "PR-TWICE", lines=[PR_LINE])

    assert errors == [
        {
            "field": "variables.requisition.req_no",
            "message": f"is already being processed by instance {first}",
        }
    ]
    listed = api.ok("GET", "/instances?business_key=PR-TWICE")
    assert [i["id"] for i in listed["items"]] == [first]
    # The ERP hears nothing that reads as the first requisition's rejection.
    assert _rejections_of(api, "PR-TWICE") == []


def refused(api: P2PApi, name: str, payload: dict) -> list[dict]:
    """Send a message the process cannot use; return the errors of its 422."""
    body = {"name": name, "correlation_key": api.po_no, "payload": {"po_no": api.po_no, **payload}}
    response = api.call("POST", "/messages", json=body)
    assert response.status_code == 422, response.json
    assert response.headers["Content-Type"].startswith("application/problem+json")
    assert name in response.json["detail"]
    return response.json["errors"]


def test_goods_receipt_with_an_unreadable_gtin_is_refused_and_the_po_keeps_waiting(api):
    small_requisition(api, "PR-4005")
    line = {"line_no": 1, "qty": 100, "gtin": "04012345000019", "lot": "L1"}
    line |= {"expiry_date": LONG_DATED.isoformat(), "udi": "(01)04012345000019(10)L1"}

    errors = refused(api, "goods_received", {"receipt_no": "GR-1", "lines": [line]})

    assert errors == [
        {
            "field": "payload.lines[0].gtin",
            "message": "AI (01) at position 13: check digit is 9, expected 6",
        }
    ]
    instance = api.instance()
    assert instance["status"] == "running" and instance["incident"] is None
    assert [w["element_id"] for w in instance["waiting_for"]] == ["wait_goods"]
    assert api.purchase_order()["receipts"] == [] and api.journal() == []
    assert "lot.quarantined" not in api.event_types()
    assert [e["type"] for e in instance["history"]].count("message_received") == 0

    api.receive("GR-1", (1, "L1", 100, LONG_DATED))  # the ERP corrects it and sends it again
    assert api.task("incoming_inspection")["candidate_groups"] == ["qa_manager"]


def test_invoice_with_a_comma_price_is_refused_and_the_corrected_one_is_matched(api):
    small_requisition(api, "PR-4006")
    received_and_released(api, 100)
    invoice = {"invoice_no": "INV-6", "invoice_date": api.today.isoformat()}
    invoice |= {"tax_amount": "455.00", "total": "3955.00"}

    errors = refused(
        api,
        "vendor_invoice",
        {**invoice, "lines": [{"line_no": 1, "qty": 100, "unit_price": "35,00"}]},
    )

    assert errors == [
        {"field": "payload.lines[0].unit_price", "message": "must be a decimal string"}
    ]
    assert [w["element_id"] for w in api.instance()["waiting_for"]] == ["wait_invoice"]
    assert api.purchase_order()["invoices"] == []
    assert ("duplicate_invoice", "pass") not in api.decided()

    api.invoice("INV-6", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    assert ("three_way_match", "pass") in api.decided()
    assert [kind for kind, _ in api.journal()] == ["goods_receipt", "vendor_invoice"]


def test_the_erps_own_po_number_from_its_answer_to_po_issued_correlates_later_messages(api):
    """DESIGN §4: the PO number is PO-<req_no> unless the ERP returns another."""
    from engine.scheduler import dispatch_outbox

    with erp_numbering_pos(api, "4500000123"):
        small_requisition(api, "PR-2077")
        assert dispatch_outbox(api.container.runtime) >= 2
    assert api.purchase_order()["erp_po_no"] == "4500000123"
    by_erp_number = api.ok("GET", "/purchase-orders/4500000123", who="auditor")
    assert by_erp_number["po_no"] == "PO-PR-2077"
    # From now on the ERP names its own number; the receipt still reaches the instance.
    api.po_no = "4500000123"
    api.receive("GR-77", (1, "L2377", 100, LONG_DATED))
    assert api.purchase_order()["receipts"][0]["status"] == "quarantined"
    assert [t["element_id"] for t in api.open_tasks()] == ["incoming_inspection"]


def test_an_invoice_that_comes_days_before_the_goods_waits_for_them_and_is_matched(api):
    small_requisition(api, "PR-2088")
    early = api.call(
        "POST",
        "/messages",
        json={
            "name": "vendor_invoice",
            "correlation_key": api.po_no,
            "payload": {
                "po_no": api.po_no,
                "invoice_no": "INV-88",
                "invoice_date": api.today.isoformat(),
                "lines": [{"line_no": 1, "qty": 100, "unit_price": "35.00"}],
                "tax_amount": "455.00",
                "total": "3955.00",
                "entered_by": "amy",
            },
        },
    )
    assert early.status_code == 202, early.json
    # Kept for the vendor_invoice time-to-live (30 days), not the 10-minute default.
    assert early.json["expires_at"].startswith((api.today + timedelta(days=30)).isoformat())
    api.clock.advance(days=5)
    api.receive("GR-88", (1, "L2388", 100, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")
    assert ("three_way_match", "pass") in api.decided()
    assert "invoice.blocked" not in api.event_types()
    assert [i["invoice_no"] for i in api.purchase_order()["invoices"]] == ["INV-88"]
