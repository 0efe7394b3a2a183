"""Two commands at once never both pass a check that only one of them may pass (issues 4, 5).

On SQLite the write lock already runs commands one at a time. On PostgreSQL commands for
different instances run side by side, so a check that reads other instances' work (a customer's
exposure, a lot's stock, a receivable's open amount, a supplier's earlier invoices) must lock
what it reads first. Each test holds the first command inside the check until the second has
had time to reach the same check; without the lock the second would read the world as it was
before the first and both would pass.
"""

from __future__ import annotations

import contextlib
import dataclasses
import threading
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from typing import Any

import pytest

from api.app import create_app
from api.bootstrap import Container
from tests.integration.o2c_support import O2CApi, make_api, udi

LONG_DATED = date(2028, 12, 31)
# Long enough for the second command to reach the check (or its lock) on a loaded machine.
PAUSE_SECONDS = 1.5


def pause_after(monkeypatch: pytest.MonkeyPatch, module: Any, name: str) -> None:
    """Make `module.name` wait, once it has run, until a second caller has run it too or the
    pause is over (the second caller is then waiting for the first's lock)."""
    original = getattr(module, name)
    barrier = threading.Barrier(2)

    def paused(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        with contextlib.suppress(threading.BrokenBarrierError):
            barrier.wait(timeout=PAUSE_SECONDS)
        return result

    monkeypatch.setattr(module, name, paused)


def at_once(*calls: Callable[[], Any]) -> list[Any]:
    """Run each call on its own thread, started together; their results in order."""
    results: list[Any] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(n: int, call: Callable[[], Any]) -> None:
        try:
            results[n] = call()
        except BaseException as exc:  # reported below, on the test's own thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n, c)) for n, c in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    return results


def own_client(api: O2CApi) -> O2CApi:
    """The same user on a test client of its own: one client is not for two threads."""
    return dataclasses.replace(api, client=create_app(container=api.container).test_client())


@pytest.fixture
def api(container: Container) -> O2CApi:
    return make_api(container)


def order_line(qty: int, price: str = "1000.00", lot: str = "L1") -> dict[str, Any]:
    return {
        "line_no": 1,
        "gtin": "06901234567892",
        "lot": lot,
        "qty": qty,
        "unit_price": price,
        "tax_rate": "0.13",
    }


def test_two_orders_at_once_that_together_pass_the_credit_limit_hold_one(
    api: O2CApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.handlers import o2c

    api.customer("C-RACE", credit_limit="100000.00")
    api.lot("L1", qty_on_hand=1000)
    # 56,500 each: either alone is within the limit, both together are 113 % of it.
    pause_after(monkeypatch, o2c, "gather_credit")
    first, second = at_once(
        lambda: own_client(api).start("SO-R1", "C-RACE", [order_line(50)]),
        lambda: own_client(api).start("SO-R2", "C-RACE", [order_line(50)]),
    )
    held = [s["active_tasks"][0]["element_id"] for s in (first, second) if s["active_tasks"]]
    assert held == ["approve_credit"], (first, second)
    # The held order is not exposure until released: the released one alone is.
    credit = api.ok("GET", "/customers/C-RACE/credit")
    assert Decimal(credit["exposure"]["total"]) == Decimal("56500.00"), credit


def test_two_shipments_from_one_lot_at_once_both_come_off_its_stock(
    api: O2CApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.handlers import o2c

    api.customer("C-STOCK", credit_limit="1000000.00")
    api.lot("L1", qty_on_hand=100)
    for order_no in ("SO-S1", "SO-S2"):
        assert not api.start(order_no, "C-STOCK", [order_line(2)])["active_tasks"]
    pause_after(monkeypatch, o2c, "issue_lot")

    def ship(order_no: str, first_serial: int) -> Any:
        udis = [udi("L1", first_serial), udi("L1", first_serial + 1)]
        lines = [{"line_no": 1, "qty": 2, "udis": udis}]
        return own_client(api).message(
            "shipment_confirmed", order_no, {"ship_date": "2026-11-23", "lines": lines}
        )

    answers = at_once(lambda: ship("SO-S1", 1), lambda: ship("SO-S2", 3))
    assert [a.status_code for a in answers] == [200, 200], [a.json for a in answers]
    lot = api.ok("GET", "/lots/06901234567892/L1")
    assert lot["qty_on_hand"] == 96, lot


def test_two_payments_at_once_cannot_both_take_the_same_open_amount(
    api: O2CApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain import sales

    api.customer("C-PAY")
    api.ok("POST", "/receivables", json={
        "document_no": "AR-RACE", "customer_id": "C-PAY", "currency": "CNY", "amount": "100.00",
        "doc_date": "2026-11-01", "due_date": "2026-12-01",
    })  # fmt: skip
    pause_after(monkeypatch, sales, "get_receivable")

    def pay(reference: str) -> Any:
        body = {"amount": "60.00", "paid_on": "2026-11-20", "reference": reference}
        return own_client(api).call("POST", "/receivables/AR-RACE/payments", json=body)

    answers = at_once(lambda: pay("BANK-1"), lambda: pay("BANK-2"))
    # The second is refused as an overpayment, as it would be one after the other.
    assert sorted(a.status_code for a in answers) == [201, 400], [a.json for a in answers]
    refused = next(a.json for a in answers if a.status_code == 400)
    assert "exceeds the open amount 40.00" in refused["detail"], refused
    credit = api.ok("GET", "/customers/C-PAY/credit")
    assert Decimal(credit["exposure"]["open_receivables"]) == Decimal("40.00"), credit


def test_one_invoice_sent_twice_at_once_to_two_pos_is_held_as_a_duplicate_once(
    container: Container, monkeypatch: pytest.MonkeyPatch
) -> None:
    from domain import procurement
    from tests.integration import p2p_support

    first = p2p_support.make_api(container)
    first.supplier()
    second = dataclasses.replace(first, client=create_app(container=container).test_client())
    for api, n in ((first, 1), (second, 2)):
        line = {"line_no": 1, "sku": "SKU-1", "gtin": p2p_support.GTIN, "qty": 100 + n,
                "unit_price": "35.00"}  # fmt: skip
        api.start(f"PR-RACE-{n}", [line])
        api.receive(f"GR-{n}", (1, f"L-RACE-{n}", 100 + n, LONG_DATED))
        api.done("incoming_inspection", "quinn", result="pass")
    pause_after(monkeypatch, procurement, "prior_invoices")

    def invoice(api: Any, qty: int) -> Any:
        net = Decimal("35.00") * qty
        tax = (net * Decimal("0.13")).quantize(Decimal("0.01"))
        return api.invoice("INV-RACE-7", [(1, qty, "35.00")], str(tax), str(net + tax))

    at_once(lambda: invoice(first, 101), lambda: invoice(second, 102))
    held = [
        api.req_no
        for api in (first, second)
        if any(t["element_id"] == "review_duplicate" for t in api.open_tasks())
    ]
    assert len(held) == 1, held


def test_a_message_sent_while_the_instance_subscribes_reaches_it(
    rt: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from engine.runtime import commands
    from engine.store.tables import Instance
    from tests.integration.conftest import ERP

    looked, sent = threading.Event(), threading.Event()
    original = commands._buffered_for

    def subscribing(ex: Any, subscriptions: list[Any]) -> Any:
        # The instance has subscribed and found nothing buffered, but not yet committed.
        found = original(ex, subscriptions)
        looked.set()
        sent.wait(timeout=PAUSE_SECONDS)
        return found

    monkeypatch.setattr(commands, "_buffered_for", subscribing)

    def send() -> Any:
        looked.wait(timeout=30)
        try:
            return commands.deliver_message(
                rt, "payment_received", "SO-MB", {"amount": "10"}, None, ERP
            )
        finally:
            sent.set()

    started, delivered = at_once(
        lambda: commands.start(rt, "approval", "SO-MB", {"amount": 10}, ERP), send
    )
    assert delivered.status_code == 200, delivered.body
    with rt.uow(write=False) as uow:
        assert uow.session.get(Instance, started.body["id"]).status == "completed"
