"""The ERP's shipment confirmation on SQLite and PostgreSQL: refused when it cannot be read,
held when it reads but disagrees with the order or with what was shipped before (DOMAIN §2)."""

from __future__ import annotations

import pytest

from api.bootstrap import Container
from tests.integration.o2c_support import O2CApi, make_api, udi


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
