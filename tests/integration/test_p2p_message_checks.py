"""P2P messages the process must not apply as sent (DOMAIN §4, §5): a payment other than the
one requested, a message naming another PO, a receipt of another product than the PO line's,
an invoice beyond the amounts the match can compare. Each is refused with a 422 naming the
field, nothing of it is kept, and the process keeps waiting for a usable one."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import select

from domain.inventory import Lot
from tests.integration.p2p_support import GTIN, P2PApi, erp_numbering_pos, make_api, udi

LONG_DATED = date(2028, 12, 31)
OTHER_GTIN = "04012345678901"  # a valid GTIN, of another product than the PO's


@pytest.fixture
def api(container) -> P2PApi:
    p2p = make_api(container)
    p2p.supplier()  # 2/10 net 30
    return p2p


def ordered(api: P2PApi, req_no: str, qty: int, price: str = "35.00") -> None:
    line = {"line_no": 1, "sku": "SKU-1", "gtin": GTIN, "qty": qty, "unit_price": price}
    api.start(req_no, [line])  # under 10,000: approved at once and the PO issued


def received_and_released(api: P2PApi, qty: int, receipt_no: str = "GR-1") -> None:
    api.receive(receipt_no, (1, f"L-{receipt_no}", qty, LONG_DATED))
    api.done("incoming_inspection", "quinn", result="pass")


def send(api: P2PApi, name: str, payload: dict[str, Any], correlation_key: str = "") -> Any:
    body = {"name": name, "correlation_key": correlation_key or api.po_no, "payload": payload}
    return api.call("POST", "/messages", json=body)


def refused_fields(response: Any) -> list[str]:
    assert response.status_code == 422, response.json
    assert response.headers["Content-Type"].startswith("application/problem+json")
    return [error["field"] for error in response.json["errors"]]


def waiting_at(api: P2PApi) -> list[str]:
    instance = api.instance()
    assert instance["status"] == "running" and instance["incident"] is None, instance
    return [w["element_id"] for w in instance["waiting_for"] if w["type"] == "message"]


# --- 1. a payment is what was requested -----------------------------------------------------


@pytest.mark.parametrize(
    ("invoice_age_days", "paid"),
    [
        (60, "100.00"),  # past its discount date: 692.13 was booked as a "discount"
        (60, "776.29"),  # the 2 % discount, though the discount date had passed
        (0, "700.00"),  # on the discount date, but less than the total less the discount
    ],
)
def test_a_payment_other_than_the_one_requested_is_refused_and_the_invoice_stays_unpaid(
    api, invoice_age_days, paid
):
    ordered(api, "PR-7010", qty=701, price="1.00")
    received_and_released(api, 701)
    invoice_date = api.today - timedelta(days=invoice_age_days)
    api.invoice("PI-701", [(1, 701, "1.00")], "91.13", "792.13", invoice_date=invoice_date)
    if invoice_age_days == 0:
        api.wait_for_payment_date()
    [request] = api.payloads("payment.requested")
    payment = {"po_no": api.po_no, "invoice_no": "PI-701", "paid_on": request["pay_on"]}

    refused = send(api, "payment_executed", {**payment, "amount": paid})

    assert refused_fields(refused) == ["payload.amount"]
    assert request["amount"] in refused.json["errors"][0]["message"]
    assert waiting_at(api) == ["wait_payment"]
    assert [kind for kind, _ in api.journal()] == ["goods_receipt", "vendor_invoice"]
    assert [i["status"] for i in api.purchase_order()["invoices"]] == ["posted"]
    assert api.purchase_order()["status"] == "open"
    # The ERP pays what was asked: posted, with the discount only where it was allowed.
    api.message("payment_executed", {**payment, "amount": request["amount"]})
    assert api.instance()["status"] == "completed"
    discount = Decimal(request["discount"])
    assert discount == (Decimal("15.84") if invoice_age_days == 0 else 0)
    expected = {"2202": Decimal("792.13"), "1002": -Decimal(request["amount"])}
    assert api.journal()[-1] == (
        "vendor_payment",
        expected | ({"660302": -discount} if discount else {}),
    )


def test_a_payment_of_the_full_total_instead_of_the_discounted_amount_takes_no_discount(api):
    ordered(api, "PR-7011", qty=701, price="1.00")
    received_and_released(api, 701)
    api.invoice("PI-711", [(1, 701, "1.00")], "91.13", "792.13")
    api.wait_for_payment_date()
    [request] = api.payloads("payment.requested")
    assert (request["amount"], request["discount"]) == ("776.29", "15.84")

    api.message("payment_executed", {"invoice_no": "PI-711", "amount": "792.13"})

    assert api.instance()["status"] == "completed"
    assert api.journal()[-1] == (
        "vendor_payment",
        {"2202": Decimal("792.13"), "1002": Decimal("-792.13")},
    )


# --- 2. a message is about the PO it is correlated to ----------------------------------------


def test_a_message_naming_another_po_is_refused_and_neither_po_changes(api):
    ordered(api, "PR-7020", qty=100)
    other, other_instance = api.po_no, api.instance_id
    ordered(api, "PR-7021", qty=100)  # the PO the messages below are correlated to
    elsewhere = {"po_no": other}
    invoice = {"invoice_no": "INV-21", "invoice_date": (api.today - timedelta(days=60)).isoformat()}
    invoice |= {"lines": [{"line_no": 1, "qty": 100, "unit_price": "35.00"}]}
    invoice |= {"tax_amount": "455.00", "total": "3955.00"}
    line = {"line_no": 1, "qty": 100, "gtin": GTIN, "lot": "L-21"}
    line |= {"expiry_date": LONG_DATED.isoformat(), "udi": udi("L-21", LONG_DATED)}

    closing = send(api, "po_closed", {**elsewhere, "reason": "vendor out of stock"})
    assert refused_fields(closing) == ["payload.po_no"]
    assert other in closing.json["errors"][0]["message"]
    assert waiting_at(api) == ["wait_goods"]

    receipt = send(api, "goods_received", {**elsewhere, "receipt_no": "GR-21", "lines": [line]})
    assert refused_fields(receipt) == ["payload.po_no"]
    assert api.purchase_order()["receipts"] == []
    received_and_released(api, 100)

    billed = send(api, "vendor_invoice", {**elsewhere, **invoice})
    assert refused_fields(billed) == ["payload.po_no"]
    assert api.purchase_order()["invoices"] == []
    api.message("vendor_invoice", invoice)

    payment = {"invoice_no": "INV-21", "amount": "3955.00"}
    paid = send(api, "payment_executed", {**elsewhere, **payment})
    assert refused_fields(paid) == ["payload.po_no"]
    assert waiting_at(api) == ["wait_payment"]
    api.message("payment_executed", payment)

    assert api.instance()["status"] == "completed"
    assert api.purchase_order()["status"] == "closed"
    api.po_no, api.instance_id = other, other_instance  # what the refused messages named
    assert waiting_at(api) == ["wait_goods"]
    assert api.purchase_order()["status"] == "open"
    assert api.purchase_order()["receipts"] == [] and api.purchase_order()["invoices"] == []
    assert api.journal() == []


def test_a_message_may_name_the_po_by_its_own_or_the_erps_number(api):
    from engine.scheduler import dispatch_outbox

    with erp_numbering_pos(api, "4500000722"):
        ordered(api, "PR-7022", qty=100)
        assert dispatch_outbox(api.container.runtime) >= 2
    ours = api.po_no
    line = {"line_no": 1, "qty": 100, "gtin": GTIN, "lot": "L-22"}
    line |= {"expiry_date": LONG_DATED.isoformat(), "udi": udi("L-22", LONG_DATED)}

    # Sent under the ERP's number, naming flowgate's; and the other way round.
    receipt = {"po_no": ours, "receipt_no": "GR-22", "lines": [line]}
    assert send(api, "goods_received", receipt, correlation_key="4500000722").status_code == 200
    api.done("incoming_inspection", "quinn", result="pass")
    invoice = {"po_no": "4500000722", "invoice_no": "INV-22", "invoice_date": api.today.isoformat()}
    invoice |= {"lines": [{"line_no": 1, "qty": 100, "unit_price": "35.00"}]}
    invoice |= {"tax_amount": "455.00", "total": "3955.00"}
    assert send(api, "vendor_invoice", invoice, correlation_key=ours).status_code == 200

    assert [i["invoice_no"] for i in api.purchase_order()["invoices"]] == ["INV-22"]
    assert [w["type"] for w in api.instance()["waiting_for"]] == ["timer"]  # the discount date


# --- 3. a receipt is of the product ordered --------------------------------------------------


def test_a_receipt_of_another_product_than_the_po_line_is_refused_naming_its_gtin(api):
    ordered(api, "PR-7030", qty=100)
    line = {"line_no": 1, "qty": 100, "gtin": OTHER_GTIN, "lot": "L-30"}
    line |= {"expiry_date": LONG_DATED.isoformat(), "udi": udi("L-30", LONG_DATED, OTHER_GTIN)}

    refused = send(
        api, "goods_received", {"po_no": api.po_no, "receipt_no": "GR-30", "lines": [line]}
    )

    assert refused_fields(refused) == ["payload.lines[0].gtin"]
    assert GTIN in refused.json["errors"][0]["message"]
    assert waiting_at(api) == ["wait_goods"]
    assert api.purchase_order()["receipts"] == [] and api.journal() == []
    assert api.purchase_order()["lines"][0]["qty_received"] == 0
    with api.container.runtime.uow(write=False) as uow:
        assert uow.session.scalars(select(Lot).where(Lot.gtin == OTHER_GTIN)).all() == []
    # The PO's product, written as its GTIN-13, is the same product (compared as 14 digits).
    same = line | {"gtin": GTIN.lstrip("0"), "udi": udi("L-30", LONG_DATED)}
    receipt = {"po_no": api.po_no, "receipt_no": "GR-30", "lines": [same]}
    assert send(api, "goods_received", receipt).status_code == 200
    assert api.task("incoming_inspection")["candidate_groups"] == ["qa_manager"]
    assert api.purchase_order()["lines"][0]["qty_received"] == 100


# --- 4. an invoice's amounts are within what the match compares ------------------------------


@pytest.mark.parametrize(
    ("po_line", "invoice_lines", "total", "field"),
    [
        # 9,999,999,999,900 for one line: the match's price variance could not be compared.
        ((100, "35.00"), [(1, 100, "99999999999")], "3955.00", "payload.lines[0].unit_price"),
        # Cheap on the invoice, but 19 trillion at the PO's price: the same variance.
        ((1, "9000.00"), [(1, 2**31 - 1, "0.0001")], "214748.36", "payload.lines[0].qty"),
        # Each line under the limit, together past it.
        ((100, "35.00"), [(n, 1, "90000000000") for n in range(1, 12)], "3955.00", "payload.lines"),
        ((100, "35.00"), [(1, 100, "35.00")], "100000000000.00", "payload.total"),
    ],
)
def test_an_invoice_beyond_the_amounts_the_match_compares_is_refused_naming_it(
    api, po_line, invoice_lines, total, field
):
    qty, price = po_line
    ordered(api, "PR-7040", qty=qty, price=price)
    received_and_released(api, qty)
    invoice = {"po_no": api.po_no, "invoice_no": "INV-40", "invoice_date": api.today.isoformat()}
    invoice |= {"tax_amount": "0.00", "total": total}
    invoice |= {"lines": [{"line_no": n, "qty": q, "unit_price": p} for n, q, p in invoice_lines]}

    refused = send(api, "vendor_invoice", invoice)

    assert refused_fields(refused) == [field]
    assert "100,000,000,000" in refused.json["errors"][0]["message"]
    assert waiting_at(api) == ["wait_invoice"]
    assert api.purchase_order()["invoices"] == []
    net = Decimal(price) * qty
    api.invoice("INV-40", [(1, qty, price)], tax_amount="0.00", total=str(net))
    assert ("three_way_match", "pass") in api.decided()
    assert [kind for kind, _ in api.journal()] == ["goods_receipt", "vendor_invoice"]
