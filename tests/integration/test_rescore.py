"""The nightly credit re-score (issue 3, `credit_score`): grades follow payment behaviour."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from api.bootstrap import Container
from api.settings import Settings
from domain.customers import Customer, CustomerRiskEvent, CustomerScoreRun
from engine.definitions.compile import SourceFile
from engine.rescore import rescore_customers
from engine.store.audit import AuditEvent
from engine.store.tables import DecisionRecord, OutboxMessage
from tests.integration.conftest import make_container
from tests.integration.o2c_support import O2CApi, make_api

AS_OF = date(2026, 11, 23)
REVIEW_MODEL = Path(__file__).resolve().parents[2] / "processes" / "customer_risk_review.bpmn"


@pytest.fixture
def api(container: Container) -> O2CApi:
    return make_api(container)


def receivable(
    api: O2CApi, cid: str, document_no: str, amount: str, doc_date: str, due_date: str
) -> None:
    item = {"document_no": document_no, "customer_id": cid, "amount": amount}
    api.ok("POST", "/receivables", json={**item, "doc_date": doc_date, "due_date": due_date})


def history(api: O2CApi, cid: str, paid_on: str, grade: str) -> None:
    """A customer since 2024 who paid three invoices this year on `paid_on` (due 2026-03-31)."""
    api.customer(cid, grade=grade)
    items = [(f"{cid}-OLD", "2024-10-01", "2024-10-31", "2024-10-30")] + [
        (f"{cid}-{n}", "2026-03-01", "2026-03-31", paid_on) for n in range(3)
    ]
    for document_no, doc_date, due_date, paid in items:
        receivable(api, cid, document_no, "10000.00", doc_date, due_date)
        api.ok(
            "POST",
            f"/receivables/{document_no}/payments",
            json={"amount": "10000.00", "paid_on": paid},
        )


def rescore(api: O2CApi) -> dict[str, int]:
    runtime = api.container.runtime
    return rescore_customers(runtime, runtime.rules.rules, AS_OF)


def counts(api: O2CApi) -> tuple[int, int, int, int]:
    with api.container.runtime.uow(write=False) as uow:
        s = uow.session
        return (
            s.scalar(select(func.count()).select_from(CustomerRiskEvent)),
            s.scalar(
                select(func.count())
                .select_from(OutboxMessage)
                .where(OutboxMessage.event_type == "customer.downgraded")
            ),
            s.scalar(
                select(func.count())
                .select_from(DecisionRecord)
                .where(DecisionRecord.ruleset_key == "credit_score")
            ),
            s.scalar(select(func.count()).select_from(CustomerScoreRun)),
        )


def test_a_customer_paying_90_days_late_is_downgraded_once_with_a_risk_event(api: O2CApi):
    history(api, "LATE", paid_on="2026-06-29", grade="A")

    assert rescore(api) == {"downgraded": 1}

    with api.container.runtime.uow(write=False) as uow:
        customer = uow.session.get(Customer, "LATE")
        assert (customer.grade, customer.score) == ("D", 30)
        # The limit is a documented decision: the score only recommends.
        assert customer.credit_limit == Decimal("100000.00")
        event = uow.session.scalars(select(CustomerRiskEvent)).one()
        assert (event.customer_id, event.previous_grade, event.grade) == ("LATE", "A", "D")
        outbox = uow.session.scalars(
            select(OutboxMessage).where(OutboxMessage.event_type == "customer.downgraded")
        ).one()
        assert outbox.payload["customer_id"] == "LATE"
        assert outbox.payload["risk_event_id"] == event.id
        decision = uow.session.get(DecisionRecord, event.decision_id)
        assert decision.element_id == "customer:LATE"
        assert decision.record["facts"]["avg_days_beyond_terms"] == "90.00"
        assert decision.record["fired"][0]["rule_id"] == "grade_d"
        audited = uow.session.scalars(
            select(AuditEvent.action).where(AuditEvent.entity_type == "customer_risk_event")
        ).all()
        assert audited == ["customer_risk_event_created"]
    assert counts(api) == (1, 1, 1, 1)

    credit = api.ok("GET", "/customers/LATE/credit", who="carol")
    assert credit["grade"] == "D"
    assert credit["scoring"]["scored_on"] == "2026-11-23"
    assert credit["scoring"]["previous_grade"] == "A"
    assert credit["scoring"]["recommended_terms"] == "cash in advance"

    # The same day again (a second run, or a second scheduler): nothing new is written.
    assert rescore(api) == {"unchanged": 1}
    assert counts(api) == (1, 1, 1, 1)


def test_a_downgrade_gives_the_credit_manager_a_review_whose_answer_goes_to_the_erp(
    api: O2CApi,
):
    with api.container.runtime.uow() as uow:
        model = SourceFile(REVIEW_MODEL.name, REVIEW_MODEL.read_bytes())
        api.container.runtime.catalog.deploy(uow, [model], "test")
        uow.commit()
    history(api, "LATE", paid_on="2026-06-29", grade="A")
    assert rescore(api) == {"downgraded": 1}

    [task] = api.ok("GET", "/tasks?scope=mine", who="carol")["items"]
    assert task["name"] == "Review downgraded customer"
    assert task["business_key"] == "LATE:2026-11-23"
    refused = api.call("POST", f"/tasks/{task['id']}/complete", who="carol", json={})
    assert refused.status_code == 422
    done = api.ok(
        "POST",
        f"/tasks/{task['id']}/complete",
        who="carol",
        json={"variables": {"limit_action": "apply_recommended", "reason": "paid 90 days late"}},
    )
    assert done["status"] == "completed"
    with api.container.runtime.uow(write=False) as uow:
        answer = uow.session.scalars(
            select(OutboxMessage.payload).where(
                OutboxMessage.event_type == "customer.risk_reviewed"
            )
        ).one()
    assert answer["customer_id"] == "LATE"
    assert (answer["previous_grade"], answer["grade"]) == ("A", "D")
    assert answer["limit_action"] == "apply_recommended"
    assert answer["reviewed_by"] == "carol"
    # The second run of the day starts no second review.
    assert rescore(api) == {"unchanged": 1}
    assert api.ok("GET", "/tasks?scope=mine", who="carol")["items"] == []


def write_off_item(api: O2CApi, cid: str, document_no: str, doc_date: str, on: str) -> Any:
    receivable(api, cid, document_no, "5000.00", doc_date, doc_date)
    return api.call(
        "POST",
        f"/receivables/{document_no}/write-offs",
        json={"amount": "5000.00", "written_off_on": on, "reason": "insolvency", "reference": on},
    )


def test_a_write_off_in_the_last_24_months_lowers_the_score_an_older_one_does_not(api: O2CApi):
    for cid in ("RECENT", "OLDWO"):
        history(api, cid, paid_on="2026-03-31", grade="A")
    written = write_off_item(api, "RECENT", "RECENT-WO", "2026-01-15", "2026-05-01")
    assert written.status_code == 201
    assert written.json["receivable"]["open_amount"] == "0.00"
    assert written.json["receivable"]["status"] == "bad_debt"
    assert write_off_item(api, "OLDWO", "OLDWO-WO", "2024-01-15", "2024-06-01").status_code == 201

    rescore(api)

    with api.container.runtime.uow(write=False) as uow:
        facts = {
            row.element_id: row.record["facts"]
            for row in uow.session.scalars(
                select(DecisionRecord).where(DecisionRecord.ruleset_key == "credit_score")
            )
        }
        scores = {cid: uow.session.get(Customer, cid).score for cid in ("RECENT", "OLDWO")}
    assert facts["customer:RECENT"]["write_offs_24m"] == 1
    assert facts["customer:OLDWO"]["write_offs_24m"] == 0
    assert scores["RECENT"] < scores["OLDWO"]


def test_a_write_off_is_refused_naming_the_field_and_repeated_ones_count_once(api: O2CApi):
    history(api, "WO", paid_on="2026-03-31", grade="A")
    body = {
        "amount": "100.00",
        "written_off_on": "2026-05-01",
        "reason": "dispute",
        "reference": "W1",
    }
    path = "/receivables/WO-0/write-offs"
    assert api.call("POST", path, json=body).status_code == 400  # nothing is open on WO-0
    receivable(api, "WO", "WO-9", "300.00", "2026-04-01", "2026-04-30")
    path = "/receivables/WO-9/write-offs"
    too_much = api.call("POST", path, json={**body, "amount": "301.00"})
    assert too_much.status_code == 400
    assert too_much.json["errors"][0]["field"] == "amount"
    no_reason = api.call("POST", path, json={**body, "reason": ""})
    assert no_reason.json["errors"][0]["field"] == "reason"
    assert api.call("POST", path, json=body).status_code == 201
    again = api.call("POST", path, json=body)
    assert again.status_code == 200
    assert again.json["receivable"]["open_amount"] == "200.00"
    assert api.call("POST", "/receivables/NOPE/write-offs", json=body).status_code == 404
    assert api.call("POST", path, who="carol", json=body).status_code == 403


def test_customers_who_stay_or_improve_get_no_risk_event(api: O2CApi):
    history(api, "STAYS", paid_on="2026-03-30", grade="A")
    history(api, "IMPROVES", paid_on="2026-03-31", grade="C")
    api.customer("SILENT", grade="B")  # no receivables: nothing to judge, the ERP grade stands

    assert rescore(api) == {"scored": 2, "no_history": 1}

    with api.container.runtime.uow(write=False) as uow:
        grades = dict(uow.session.execute(select(Customer.id, Customer.grade)).all())
    assert grades == {"STAYS": "A", "IMPROVES": "A", "SILENT": "B"}
    assert counts(api) == (0, 0, 2, 2)
    credit = api.ok("GET", "/customers/SILENT/credit", who="carol")
    assert credit["scoring"] is None


def test_the_rescore_job_runs_nightly_at_the_configured_hour(
    database_url: str, tmp_path: Path
) -> None:
    assert Settings.from_env({"FLOWGATE_RESCORE_HOUR": "4"}).rescore_hour == 4
    assert Settings.from_env({}).rescore_hour == 2
    container = make_container(database_url, tmp_path, rescore_hour=4)
    try:
        container.start_scheduler()
        job = container.scheduler._scheduler.get_job("rescore")
        fields = {f.name: str(f) for f in job.trigger.fields}
        assert (fields["hour"], fields["minute"]) == ("4", "0")
    finally:
        container.close()


@pytest.fixture
def container(database_url: str, tmp_path: Path) -> Iterator[Container]:
    c = make_container(database_url, tmp_path)
    yield c
    c.close()


def test_the_re_score_runs_on_demand_from_the_command_line(
    api: O2CApi, database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
):
    """DOMAIN §1: recomputed nightly and on demand (`flowgate rescore`)."""
    from api.cli import main as cli_main

    history(api, "LATE", paid_on="2026-06-29", grade="A")
    monkeypatch.setenv("FLOWGATE_DATABASE_URL", database_url)
    monkeypatch.setenv("FLOWGATE_SECRET_KEY", "test-secret-key")

    assert cli_main(["rescore", "--as-of", "2026-11-23"]) == 0

    assert "downgraded 1" in capsys.readouterr().out
    assert api.ok("GET", "/customers/LATE/credit", who="carol")["grade"] == "D"
