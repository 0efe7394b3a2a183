"""Procure to pay through HTTP, one test per path (issue 5; DOMAIN §4, §5). Each checks the
journal entries balance, the decisions recorded and the events sent to the ERP."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

import pytest

from tests.integration.p2p_support import P2PApi, make_api

LONG_DATED = date(2028, 12, 31)


@pytest.fixture
def api(container) -> P2PApi:
    p2p = make_api(container)
    p2p.supplier()
    return p2p


def small_requisition(api: P2PApi, req_no: str = "PR-2001", qty: int = 100) -> None:
    api.start(req_no, [{"line_no": 1, "sku": "SKU-1", "gtin": "06901234567892", "qty": qty,
                        "unit_price": "35.00"}])


def test_requisition_under_ten_thousand_is_auto_approved_and_paid_on_the_discount_date(api):
    small_requisition(api)
    assert api.decided() == [("procurement", "pass")]
    assert "po.issued" in api.event_types() and "requisition.approved" in api.event_types()
    api.receive("GR-1", (1, "L2301", 100, LONG_DATED))
    assert api.purchase_order()["receipts"][0]["status"] == "quarantined"
    api.done("incoming_inspection", "quinn", result="pass")
    assert api.purchase_order()["receipts"][0]["status"] == "released"

    api.invoice("INV-1", [(1, 100, "35.00")], tax_amount="455.00", total="3955.00")
    discount_date = (api.today + timedelta(days=10)).isoformat()  # 2/10 net 30
    [request] = api.payloads("payment.requested")
    assert request["amount"] == "3875.90" and request["discount"] == "79.10"
    assert request["pay_on"] == discount_date
    api.message(
        "payment_executed", {"invoice_no": "INV-1", "amount": "3875.90", "paid_on": discount_date}
    )

    assert api.instance()["status"] == "completed"
    assert api.journal() == [
        ("goods_receipt", {"1405": Decimal("3500.00"), "220202": Decimal("-3500.00")}),
        ("vendor_invoice", {"220202": Decimal("3500.00"), "22210101": Decimal("455.00"),
                            "2202": Decimal("-3955.00")}),
        ("vendor_payment", {"2202": Decimal("3955.00"), "1002": Decimal("-3875.90"),
                            "660302": Decimal("-79.10")}),
    ]
    assert [key for key, _ in api.decided()] == [
        "procurement", "goods_receipt", "duplicate_invoice",
        "three_way_match_line", "three_way_match", "payment_discount",
    ]
    assert api.event_types().count("journal.posted") == 3
    for event in ("lot.quarantined", "lot.released", "payment.requested"):
        assert event in api.event_types()
