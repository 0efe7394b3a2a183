"""The receivables KPI report (DOMAIN §1) through HTTP, on SQLite and PostgreSQL.

One known history: four CNY open items of one customer (one partly paid in the period, one paid
after it, one written off in it), an item in USD, and five orders: one passes, one of a blocked
customer is rejected, three over the limit are held. The credit managers release one hold after
four hours, refuse one after three, and give the N-eyes third only its first approval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.bootstrap import Container
from tests.integration.conftest import sqlite_container
from tests.integration.o2c_support import O2CApi, make_api
from tests.integration.p2p_support import Clock
from tests.integration.test_query_plans import plans_of_statements, whole_reads

REPORT = "/reports/receivables"


@dataclass
class History:
    api: O2CApi
    last_day: date  # today on the runtime's clock, when the history is complete

    def day(self, offset: int) -> str:
        return (self.last_day + timedelta(days=offset)).isoformat()

    def report(self, first: int, last: int = 0, who: str = "carol", **more: str) -> Any:
        query = {"from": self.day(first), "to": self.day(last), **more}
        return self.api.call("GET", REPORT, who, query_string=query)


def _line(qty: int) -> dict[str, Any]:
    return {
        "line_no": 1,
        "gtin": "06901234567892",
        "qty": qty,
        "unit_price": "1000.00",
        "tax_rate": "0.13",
    }


def _item(api: O2CApi, document_no: str, customer: str, amount: str, doc: str, due: str) -> None:
    body = {
        "document_no": document_no,
        "customer_id": customer,
        "amount": amount,
        "doc_date": doc,
        "due_date": due,
    }
    api.ok("POST", "/receivables", json=body)


def _approval(api: O2CApi, order_no: str) -> str:
    (task,) = api.open_tasks(order_no)
    return task["id"]


def build_history(container: Container) -> History:
    api = make_api(container)
    # Held decisions are timed to the approvers' answers, and a hold release keeps the wall
    # clock's time: the runtime's clock starts four hours back and catches up with it.
    clock = Clock(datetime.now(UTC) - timedelta(hours=4))
    container.runtime.clock = clock
    last = (clock.now + timedelta(hours=4)).date()
    history = History(api, last)
    day = history.day
    api.customer("C1")
    api.customer("C2", credit_limit="2000.00")
    api.customer("C3", blocked=True)
    api.customer("C9", currency="USD")
    _item(api, "AR-1", "C1", "3000.00", day(-29), day(-10))
    api.ok("POST", "/receivables/AR-1/payments", json={"amount": "1000.00", "paid_on": day(-5)})
    _item(api, "AR-2", "C1", "5000.00", day(-20), day(10))
    api.ok("POST", "/receivables/AR-2/payments", json={"amount": "2000.00", "paid_on": day(1)})
    _item(api, "AR-3", "C1", "2000.00", day(-40), day(-25))
    write_off = {"amount": "500.00", "written_off_on": day(-3), "reason": "insolvency"}
    api.ok("POST", "/receivables/AR-3/write-offs", json=write_off)
    _item(api, "AR-4", "C1", "1000.00", day(-5), day(25))
    _item(api, "AR-9", "C9", "9999.00", day(-5), day(25))

    api.start("SO-P", "C1", [_line(1)])  # passes
    api.start("SO-R", "C3", [_line(1)])  # blocked customer: rejected
    api.start("SO-H1", "C2", [_line(2)])  # 2,260 against 2,000: one approval
    api.start("SO-H2", "C2", [_line(2)])
    api.start("SO-H3", "C2", [_line(20)])  # 22,600: N-eyes
    first, refused, n_eyes = (_approval(api, o) for o in ("SO-H1", "SO-H2", "SO-H3"))
    clock.advance(hours=3)
    assert api.complete(refused, "chris", approved=False, reason="too risky").status_code == 200
    assert api.complete(n_eyes, "carol", approved=True, reason="known buyer").status_code == 200
    clock.now = max(clock.now + timedelta(hours=1), datetime.now(UTC))
    assert api.complete(first, "carol", approved=True, reason="pays late, pays").status_code == 200
    return history


@pytest.fixture
def history(container: Container) -> History:
    return build_history(container)


def test_report_shows_each_figure_with_the_inputs_it_comes_from(history: History) -> None:
    response = history.report(-29)

    assert response.status_code == 200, response.json
    report = response.json
    assert report["period"] == {"from": history.day(-29), "to": history.day(0)}
    assert report["currency"] == "CNY"
    assert report["figures"] == {
        "dso_days": "31.7",  # 9,500 open / 9,000 sold x 30 days
        "best_possible_dso_days": "20.0",  # 6,000 not yet due / 9,000 x 30
        "average_days_delinquent": "11.7",
        "overdue_ratio": "0.3684",  # 3,500 / 9,500
        "bad_debt_ratio": "0.0556",  # 500 / 9,000
        "hold_rate": "0.6000",  # 3 holds of 5 credit decisions
        "average_hold_release_hours": "4.0",
        "average_approval_cycle_hours": "3.3",  # 3 + 3 + 4 hours over 3 tasks
    }
    assert report["inputs"] == {
        "days": 30,
        # AR-1, AR-2 and AR-4; AR-3 is older, AR-9 is in USD.
        "credit_sales": "9000.00",
        "credit_sales_items": 3,
        # AR-1 2,000 after its payment, AR-3 1,500 after the write-off (both overdue); AR-2
        # 5,000, its payment dated after the period, and AR-4 1,000 (both not yet due).
        "open_ar": "9500.00",
        "current_ar": "6000.00",
        "overdue_ar": "3500.00",
        "write_offs": "500.00",
        "decisions": {"total": 5, "pass": 1, "warn": 0, "hold": 3, "reject": 1},
        "holds": {
            "placed": 3,
            "released": 1,
            "refused": 1,
            "not_released": 1,  # SO-H3 waits for its second approver
            "release_hours_total": "4.0",
        },
        "approval_tasks": {"completed": 3, "waiting": 1, "cycle_hours_total": "10.0"},
    }
    assert report["formulas"]["dso_days"] == "open_ar / credit_sales * days"


def test_a_past_period_counts_what_was_open_at_its_end(history: History) -> None:
    report = history.report(-44, -15).json

    # AR-1 and AR-2 whole (paid later), AR-3 whole (written off later): 10,000, all sold then.
    assert report["inputs"]["credit_sales"] == "10000.00"
    assert (report["inputs"]["current_ar"], report["inputs"]["overdue_ar"]) == (
        "8000.00",
        "2000.00",
    )
    assert report["figures"]["dso_days"] == "30.0"
    assert report["figures"]["best_possible_dso_days"] == "24.0"
    assert report["figures"]["average_days_delinquent"] == "6.0"
    assert report["figures"]["bad_debt_ratio"] == "0.0000"


def test_each_currency_is_its_own_report_and_no_decisions_give_no_hold_rate(
    history: History,
) -> None:
    report = history.report(-29, currency="USD").json

    assert report["currency"] == "USD"
    assert report["inputs"]["credit_sales"] == "9999.00"
    assert report["inputs"]["decisions"]["total"] == 0
    assert report["figures"]["dso_days"] == "30.0"
    assert report["figures"]["hold_rate"] is None
    assert report["figures"]["average_approval_cycle_hours"] is None


def test_a_period_without_credit_sales_has_no_dso_rather_than_an_error(history: History) -> None:
    response = history.report(-29, currency="EUR")

    assert response.status_code == 200
    assert response.json["figures"]["dso_days"] is None
    assert response.json["figures"]["bad_debt_ratio"] is None


@pytest.mark.parametrize("who", ["carol", "colin", "frank", "cfo", "auditor", "admin"])
def test_credit_collections_finance_and_audit_may_read_it(history: History, who: str) -> None:
    assert history.report(-29, who=who).status_code == 200


@pytest.mark.parametrize("who", ["sam", "quinn", "erp"])
def test_other_roles_get_403(history: History, who: str) -> None:
    response = history.report(-29, who=who)

    assert response.status_code == 403
    assert response.mimetype == "application/problem+json"


@pytest.mark.parametrize(
    ("query", "status", "field"),
    [
        ({"to": "2026-01-31"}, 400, "from"),
        ({"from": "2026-01-01"}, 400, "to"),
        ({"from": "2026-01-01", "to": "31.01.2026"}, 400, "to"),
        ({"from": "2026-02-30", "to": "2026-03-31"}, 400, "from"),
        ({"from": "0001-01-01", "to": "2026-01-31"}, 400, "from"),
        ({"from": "2026-02-01", "to": "2026-01-31"}, 422, "to"),
        ({"from": "2025-01-01", "to": "2026-01-02"}, 422, "to"),  # 367 days
        ({"from": "2199-12-01", "to": "2199-12-31"}, 422, "to"),  # not over yet
        ({"from": "2026-01-01", "to": "2026-01-31", "currency": "cny"}, 422, "currency"),
        ({"from": "2026-01-01", "to": "2026-01-31", "currency": "CNYX"}, 422, "currency"),
    ],
)
def test_a_bad_period_or_currency_is_a_problem_naming_the_field(
    container: Container, query: dict[str, str], status: int, field: str
) -> None:
    api = make_api(container, deploy=False)

    response = api.call("GET", REPORT, "carol", query_string=query)

    assert response.status_code == status, response.json
    assert response.mimetype == "application/problem+json"
    assert [e["field"] for e in response.json["errors"]] == [field]


def test_a_whole_leap_year_is_one_period(container: Container) -> None:
    api = make_api(container, deploy=False)

    query = {"from": "2024-01-01", "to": "2024-12-31"}
    response = api.call("GET", REPORT, "carol", query_string=query)

    assert response.status_code == 200, response.json
    assert response.json["inputs"]["days"] == 366


def test_report_reads_sales_open_items_decisions_and_tasks_through_indexes(
    tmp_path: Path,
) -> None:
    """As tests/integration/test_query_plans.py checks the order paths, SQLite only. Payments and
    write-offs dated after the period (added back to its open AR) and the period's write-offs
    have no date index (payment.paid_on, write_off.written_off_on): those reads still grow."""
    with sqlite_container(tmp_path / "db") as container:
        history = build_history(container)
        with plans_of_statements(container.engine) as plans:
            assert history.report(-29).status_code == 200

    known = ("FROM payment ", "FROM write_off ")
    assert len(plans) >= 8
    assert [read for read in whole_reads(plans) if not any(k in read for k in known)] == []
