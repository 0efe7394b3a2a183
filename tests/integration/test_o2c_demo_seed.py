"""The demo data of the README's order-to-cash walk-through, on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest

from api.bootstrap import Container
from engine.handlers.o2c import seed_o2c_demo
from engine.rescore import rescore_customers
from tests.integration.o2c_support import O2CApi, make_api

GTIN = "06901234567892"


@pytest.fixture
def api(container: Container) -> O2CApi:
    api = make_api(container)
    runtime = container.runtime
    with runtime.uow() as uow:
        seed_o2c_demo(uow.session, runtime.clock().date())
        uow.commit()
    return api


def grade(api: O2CApi, customer_id: str) -> str:
    return api.ok("GET", f"/customers/{customer_id}/credit", who="carol")["grade"]


def test_the_nightly_rescore_keeps_the_demo_customers_grades_after_the_walk_through(
    api: O2CApi,
) -> None:
    """README: C001 is grade A. After its walk-through order is invoiced the re-score judges
    it on its records; without a history it was a new customer (N), whose every order is held
    for the credit manager."""
    started = api.start("SO-20001", "C001", [{"line_no": 1, "gtin": GTIN, "lot": "L2301",
                         "qty": 2, "unit_price": "1200.00", "tax_rate": "0.13"}])  # fmt: skip
    assert started["active_tasks"] == [], started
    expiry = api.ok("GET", f"/lots/{GTIN}/L2301")["expiry_date"]
    yymmdd = expiry[2:4] + expiry[5:7] + expiry[8:10]
    units = [f"(01){GTIN}(17){yymmdd}(10)L2301(21)S{n}" for n in (1, 2)]
    assert api.ship("SO-20001", [{"line_no": 1, "qty": 2, "udis": units}]).status_code == 200
    paid = api.message("payment_received", "SO-20001",
                       {"invoice_no": "INV-SO-20001", "amount": "2712.00"})  # fmt: skip
    assert paid.json["instance_status"] == "completed", paid.json

    runtime = api.container.runtime
    outcomes = rescore_customers(runtime, runtime.rules.rules)  # type: ignore[attr-defined]

    assert outcomes.get("failed", 0) == 0 and outcomes.get("downgraded", 0) == 0, outcomes
    assert {cid: grade(api, cid) for cid in ("C001", "C002", "C003")} == {
        "C001": "A",
        "C002": "B",
        "C003": "B",
    }
    # C002 is still near its limit with an item 90 days overdue (README): its hold stays.
    credit = api.ok("GET", "/customers/C002/credit", who="carol")
    assert credit["overdue"]["oldest_days"] == 90 and credit["exposure"]["total"] == "55000.00"
