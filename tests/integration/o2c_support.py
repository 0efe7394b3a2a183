"""Helpers for the order-to-cash tests: an HTTP client with the demo roles, seed data, checks."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import select

from api.app import create_app
from api.bootstrap import Container
from domain.records import JournalEntry
from engine.definitions.compile import SourceFile
from engine.scheduler import dispatch_outbox
from tests.integration.conftest import ApiClient

MODEL = Path(__file__).resolve().parents[2] / "processes" / "order_to_cash.bpmn"
GTIN = "06901234567892"
TODAY = "2026-11-23"


def udi(lot: str, serial: int | None = None, expiry: str = "281231", gtin: str = GTIN) -> str:
    text = f"(01){gtin}(17){expiry}(10){lot}"
    return text + (f"(21)S{serial}" if serial is not None else "")


@dataclass
class O2CApi(ApiClient):
    def customer(self, cid: str, **values: Any) -> None:
        body = {
            "name": cid,
            "currency": "CNY",
            "credit_limit": "100000.00",
            "payment_terms_days": 30,
            "license_expires_on": "2030-12-31",
            "grade": "A",
            **values,
        }
        self.ok("PUT", f"/customers/{cid}", json=body)

    def lot(self, lot: str, status: str = "released", expiry: str = "2028-12-31", **more) -> None:
        body = {"expiry_date": expiry, "status": status, "unit_cost": "50.00", "qty_on_hand": 100}
        self.ok("PUT", f"/lots/{GTIN}/{lot}", json={**body, **more})

    def start(self, order_no: str, customer: str, lines: list[dict[str, Any]]) -> dict[str, Any]:
        order = {
            "order_no": order_no,
            "customer_id": customer,
            "currency": "CNY",
            "order_date": TODAY,
            "requested_ship_date": TODAY,
            "lines": lines,
        }
        return self.ok(
            "POST",
            "/processes/order_to_cash/instances",
            json={"business_key": order_no, "variables": {"order": order}},
            headers={"Idempotency-Key": f"start-{order_no}"},
        )

    def message(self, name: str, order_no: str, payload: dict[str, Any]) -> Any:
        return self.call(
            "POST",
            "/messages",
            json={
                "name": name,
                "correlation_key": order_no,
                "payload": {"order_no": order_no, **payload},
            },
        )

    def instance(self, instance_id: str) -> dict[str, Any]:
        return self.ok("GET", f"/instances/{instance_id}", who="admin")

    def open_tasks(self, order_no: str) -> list[dict[str, Any]]:
        body = self.ok("GET", f"/tasks?scope=all&status=open&business_key={order_no}", who="admin")
        return body["items"]

    def complete(self, task_id: str, who: str, **variables: Any) -> Any:
        return self.call("POST", f"/tasks/{task_id}/complete", who, json={"variables": variables})

    def decisions(self, instance_id: str) -> list[dict[str, Any]]:
        return self.ok("GET", f"/decisions?instance_id={instance_id}", who="auditor")["items"]

    def entries(self, order_no: str) -> list[dict[str, Any]]:
        path = f"/journal-entries?source_type=order&source_id={order_no}"
        return self.ok("GET", path, who="auditor")["items"]

    def outbox_events(self, instance_id: str) -> list[str]:
        return [item["event_type"] for item in self._outbox(instance_id)]

    def outbox_payloads(self, instance_id: str, event_type: str) -> list[dict[str, Any]]:
        return [i["payload"] for i in self._outbox(instance_id) if i["event_type"] == event_type]

    def _outbox(self, instance_id: str) -> list[dict[str, Any]]:
        return self.ok("GET", f"/outbox?instance_id={instance_id}", who="auditor")["items"]

    def ship(self, order_no: str, lines: list[dict[str, Any]]) -> Any:
        return self.message("shipment_confirmed", order_no, {"ship_date": TODAY, "lines": lines})


def make_api(container: Container, deploy: bool = True) -> O2CApi:
    if deploy:
        with container.runtime.uow() as uow:
            container.runtime.catalog.deploy(
                uow, [SourceFile("order_to_cash.bpmn", MODEL.read_bytes())], "test"
            )
            uow.commit()
    tokens = {
        "erp": container.tokens.create_key("erp", ["erp_system"]),
        "admin": container.tokens.issue("admin", ["admin"]),
        "auditor": container.tokens.issue("audrey", ["auditor"]),
        "carol": container.tokens.issue("carol", ["credit_manager"], ["credit_manager"]),
        "chris": container.tokens.issue("chris", ["credit_manager"], ["credit_manager"]),
        "frank": container.tokens.issue("frank", ["finance_director"], ["finance_director"]),
        "cfo": container.tokens.issue("cfo", ["cfo"], ["cfo"]),
        "both": container.tokens.issue(
            "bo", ["credit_manager", "finance_director"], ["credit_manager", "finance_director"]
        ),
        "quinn": container.tokens.issue("quinn", ["qa_manager"], ["qa_manager"]),
        "sam": container.tokens.issue("sam", ["sales_manager"], ["sales_manager"]),
        "colin": container.tokens.issue("colin", ["collections"], ["collections"]),
    }
    return O2CApi(container, create_app(container=container).test_client(), tokens)


def assert_balanced(api: O2CApi, order_no: str) -> list[dict[str, Any]]:
    """Every journal entry of the order balances to the cent and carries its dimensions."""
    entries = api.entries(order_no)
    for entry in entries:
        debit = sum(Decimal(line["debit"]) for line in entry["lines"])
        credit = sum(Decimal(line["credit"]) for line in entry["lines"])
        assert debit == credit, entry
        assert all(line["order_no"] == order_no for line in entry["lines"]), entry
    with api.container.runtime.uow(write=False) as uow:
        assert uow.session.scalars(select(JournalEntry)).all()
    return entries


def flush_outbox(api: O2CApi) -> int:
    return dispatch_outbox(api.container.runtime, sender=lambda row, hooks: None)
