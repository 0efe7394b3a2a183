"""The ERP's shipment confirmation on SQLite and PostgreSQL: refused when it cannot be read,
held when it reads but disagrees with the order or with what was shipped before (DOMAIN §2)."""

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


def waits(api: O2CApi, instance_id: str) -> list[str]:
    return [w["name"] for w in api.instance(instance_id)["waiting_for"] if w["type"] == "message"]


def udi_holds(api: O2CApi, instance_id: str) -> list[str]:
    return api.instance(instance_id)["variables"].get("udi_hold") or []


UDIS = {
    "valid": [udi("L1", 1), udi("L1", 2)],
    "empty": [],
    "missing": None,
    "of another lot": [udi("L9", 1), udi("L9", 2)],
}


@pytest.mark.parametrize("ship_date", ["2026-02-30", "not a date"])
@pytest.mark.parametrize("udis", list(UDIS))
def test_a_shipment_with_an_unreadable_ship_date_is_refused_whatever_its_udis(
    api: O2CApi, ship_date: str, udis: str
) -> None:
    api.customer("C1")
    api.lot("L1")
    started = api.start("SO-SD", "C1", [line()])
    confirmed = {"line_no": 1, "qty": 2}
    if UDIS[udis] is not None:
        confirmed["udis"] = UDIS[udis]

    refused = api.message(
        "shipment_confirmed", "SO-SD", {"ship_date": ship_date, "lines": [confirmed]}
    )

    assert refused.status_code == 422, refused.json
    assert refused.json["errors"] == [
        {"field": "payload.ship_date", "message": "must be an ISO date (YYYY-MM-DD)"}
    ]
    instance = api.instance(started["id"])
    assert instance["status"] == "running" and instance["incident"] is None
    # Nothing of it was kept: no hold, and not the date either.
    assert instance["variables"].get("shipment_confirmed") is None, instance["variables"]
    assert udi_holds(api, started["id"]) == []
    assert waits(api, started["id"]) == ["shipment_confirmed"]
    shipped = api.ship("SO-SD", [{"line_no": 1, "qty": 2, "udis": UDIS["valid"]}])
    assert shipped.status_code == 200 and waits(api, started["id"]) == ["payment_received"]


def test_one_serial_given_for_two_units_is_held_until_corrected_data_arrives(
    api: O2CApi,
) -> None:
    """DOMAIN §2: every shipped unit is traced by its own UDI; a serial given twice names one
    unit, so the other is untraced: a data error, held like a UDI that disagrees."""
    api.customer("C1")
    api.lot("L1")
    started = api.start("SO-DUP", "C1", [line()])

    held = api.ship("SO-DUP", [{"line_no": 1, "qty": 2, "udis": [udi("L1", 1), udi("L1", 1)]}])

    assert held.status_code == 200, held.json
    assert waits(api, started["id"]) == ["shipment_confirmed"]
    assert api.entries("SO-DUP") == []
    [hold] = udi_holds(api, started["id"])
    assert "S1" in hold and "twice" in hold, hold
    corrected = api.ship("SO-DUP", [{"line_no": 1, "qty": 2, "udis": UDIS["valid"]}])
    assert corrected.status_code == 200 and waits(api, started["id"]) == ["payment_received"]
    assert_balanced(api, "SO-DUP")


def test_a_serial_already_shipped_to_another_order_is_held_until_corrected_data_arrives(
    api: O2CApi,
) -> None:
    api.customer("C1")
    api.lot("L1")
    api.start("SO-FIRST", "C1", [line()])
    assert (
        api.ship("SO-FIRST", [{"line_no": 1, "qty": 2, "udis": UDIS["valid"]}]).status_code == 200
    )
    started = api.start("SO-SECOND", "C1", [line()])

    held = api.ship("SO-SECOND", [{"line_no": 1, "qty": 2, "udis": [udi("L1", 2), udi("L1", 3)]}])

    assert held.status_code == 200, held.json
    assert waits(api, started["id"]) == ["shipment_confirmed"]
    assert api.entries("SO-SECOND") == []
    [hold] = udi_holds(api, started["id"])
    assert "S2" in hold and "SO-FIRST" in hold, hold
    corrected = api.ship(
        "SO-SECOND", [{"line_no": 1, "qty": 2, "udis": [udi("L1", 3), udi("L1", 4)]}]
    )
    assert corrected.status_code == 200 and waits(api, started["id"]) == ["payment_received"]
    trace = api.ok("GET", "/traceability/lots/06901234567892/L1", who="auditor")
    assert sorted(u["serial"] for u in trace["units"]) == ["S1", "S2", "S3", "S4"]


def test_the_serials_of_a_cancelled_order_may_ship_again(api: O2CApi) -> None:
    """A cancellation takes the shipped units back into stock (o2c.cancel), serials and all."""
    api.customer("C1")
    api.lot("L1")
    api.start("SO-BACK", "C1", [line()])
    assert api.ship("SO-BACK", [{"line_no": 1, "qty": 2, "udis": UDIS["valid"]}]).status_code == 200
    assert api.message("order_cancelled", "SO-BACK", {"reason": "returned"}).status_code == 200
    started = api.start("SO-AGAIN", "C1", [line()])

    shipped = api.ship("SO-AGAIN", [{"line_no": 1, "qty": 2, "udis": UDIS["valid"]}])

    assert shipped.status_code == 200, shipped.json
    assert waits(api, started["id"]) == ["payment_received"]


def test_units_without_a_serial_may_share_their_lot_level_udi(api: O2CApi) -> None:
    api.customer("C1")
    api.lot("L1")
    started = api.start("SO-LOT", "C1", [line()])

    shipped = api.ship("SO-LOT", [{"line_no": 1, "qty": 2, "udis": [udi("L1"), udi("L1")]}])

    assert shipped.status_code == 200, shipped.json
    assert waits(api, started["id"]) == ["payment_received"]


def test_two_orders_confirming_one_serial_at_once_ship_it_once(
    api: O2CApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL runs the two side by side: the second must wait for the first's lock on the
    lot, then find the serial shipped (see tests/integration/test_concurrent_checks.py)."""
    from domain import sales
    from tests.integration.test_concurrent_checks import at_once, own_client, pause_after

    api.customer("C1")
    api.lot("L1")
    started = [api.start(order_no, "C1", [line()])["id"] for order_no in ("SO-R1", "SO-R2")]
    pause_after(monkeypatch, sales, "shipped_serials")

    def ship(order_no: str) -> object:
        lines = [{"line_no": 1, "qty": 2, "udis": UDIS["valid"]}]
        return own_client(api).ship(order_no, lines)

    answers = at_once(lambda: ship("SO-R1"), lambda: ship("SO-R2"))

    assert [a.status_code for a in answers] == [200, 200], [a.json for a in answers]
    assert sorted(waits(api, i)[0] for i in started) == ["payment_received", "shipment_confirmed"]
    trace = api.ok("GET", "/traceability/lots/06901234567892/L1", who="auditor")
    assert sorted(u["serial"] for u in trace["units"]) == ["S1", "S2"]
