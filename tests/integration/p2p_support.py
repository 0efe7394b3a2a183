"""Helpers for the procure-to-pay tests: an HTTP client with the approver roles, an injected
clock, the ERP's messages, and the checks every path makes (balanced journals, decisions,
events)."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import select

from api.app import create_app
from api.bootstrap import Container
from domain.records import JournalEntry
from engine.definitions.compile import SourceFile
from engine.store.tables import OutboxMessage
from tests.integration.conftest import ApiClient

MODEL = Path(__file__).resolve().parents[2] / "processes" / "procure_to_pay.bpmn"
GTIN = "06901234567892"
SUPPLIER = "S001"


def udi(lot: str, expiry: date, gtin: str = GTIN) -> str:
    return f"(01){gtin}(17){expiry:%y%m%d}(10){lot}"


@dataclass
class Clock:
    """The runtime's clock, moved by the test (DESIGN §3: decisions use an explicit as_of)."""

    now: datetime

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


@dataclass
class P2PApi(ApiClient):
    clock: Clock
    po_no: str = ""
    req_no: str = ""
    instance_id: str = ""
    seen: set[str] = field(default_factory=set)

    @property
    def today(self) -> date:
        return self.clock.now.date()

    def supplier(self, sid: str = SUPPLIER, **values: Any) -> dict[str, Any]:
        body = {
            "name": "Medsupply Ltd",
            "blocked": False,
            "bank_account_trusted": True,
            "payment_terms": {"net_days": 30, "discount_pct": "2", "discount_days": 10},
            **values,
        }
        return self.ok("PUT", f"/suppliers/{sid}", json=body)

    def start(
        self,
        req_no: str,
        lines: list[dict[str, Any]],
        requester: str = "peter",
        category: str = "consumables",
        **variables: Any,
    ) -> dict[str, Any]:
        requisition = {
            "req_no": req_no,
            "requester": requester,
            "cost_center": "CC-100",
            "category": category,
            "supplier_id": SUPPLIER,
            "currency": "CNY",
            "lines": lines,
        }
        body = self.ok(
            "POST",
            "/processes/procure_to_pay/instances",
            json={"business_key": req_no, "variables": {"requisition": requisition, **variables}},
            headers={"Idempotency-Key": f"start-{req_no}"},
        )
        self.req_no, self.po_no, self.instance_id = req_no, f"PO-{req_no}", body["id"]
        return body

    def message(self, name: str, payload: dict[str, Any]) -> Any:
        response = self.call(
            "POST",
            "/messages",
            json={
                "name": name,
                "correlation_key": self.po_no,
                "payload": {"po_no": self.po_no, **payload},
                "message_id": uuid.uuid4().hex,
            },
        )
        assert response.status_code == 200, response.json
        return response.json

    def receive(self, receipt_no: str, *lots: tuple[int, str, int, date]) -> Any:
        lines = [
            {
                "line_no": line_no,
                "qty": qty,
                "gtin": GTIN,
                "lot": lot,
                "expiry_date": expiry.isoformat(),
                "udi": udi(lot, expiry),
            }
            for line_no, lot, qty, expiry in lots
        ]
        return self.message("goods_received", {"receipt_no": receipt_no, "lines": lines})

    def invoice(
        self,
        invoice_no: str,
        lines: list[tuple[int, int, str]],
        tax_amount: str,
        total: str,
        invoice_date: date | None = None,
        entered_by: str = "amy",
    ) -> Any:
        return self.message(
            "vendor_invoice",
            {
                "invoice_no": invoice_no,
                "invoice_date": (invoice_date or self.today).isoformat(),
                "lines": [{"line_no": n, "qty": q, "unit_price": price} for n, q, price in lines],
                "tax_amount": tax_amount,
                "total": total,
                "entered_by": entered_by,
            },
        )

    def instance(self) -> dict[str, Any]:
        return self.ok("GET", f"/instances/{self.instance_id}", who="admin")

    def open_tasks(self) -> list[dict[str, Any]]:
        path = f"/tasks?scope=all&status=open&business_key={self.req_no}"
        body = self.ok("GET", path, who="admin")
        return body["items"]

    def task(self, element_id: str) -> dict[str, Any]:
        tasks = [t for t in self.open_tasks() if t["element_id"] == element_id]
        assert len(tasks) == 1, (element_id, self.open_tasks(), self.instance())
        return tasks[0]

    def complete(self, element_id: str, who: str, **variables: Any) -> Any:
        task = self.task(element_id)
        return self.call(
            "POST", f"/tasks/{task['id']}/complete", who, json={"variables": variables}
        )

    def done(self, element_id: str, who: str, **variables: Any) -> None:
        response = self.complete(element_id, who, **variables)
        assert response.status_code == 200, response.json

    def decisions(self) -> list[dict[str, Any]]:
        return self.ok("GET", f"/decisions?instance_id={self.instance_id}", who="auditor")["items"]

    def decided(self) -> list[tuple[str, str]]:
        return [(d["ruleset_key"], d["outcome"]) for d in self.decisions()]

    def purchase_order(self) -> dict[str, Any]:
        return self.ok("GET", f"/purchase-orders/{self.po_no}", who="auditor")

    def events(self) -> list[tuple[str, dict[str, Any]]]:
        with self.container.runtime.uow(write=False) as uow:
            rows = uow.session.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.instance_id == self.instance_id)
                .order_by(OutboxMessage.id)
            ).all()
            return [(row.event_type, row.payload) for row in rows]

    def wait_for_payment_date(self) -> None:
        """Move the clock to the instance's waiting timer (the payment date) and fire it."""
        from engine.scheduler import sweep_timers

        [due] = [w["due_at"] for w in self.instance()["waiting_for"] if w["type"] == "timer"]
        self.clock.now = max(self.clock.now, datetime.fromisoformat(due))
        assert sweep_timers(self.container.runtime) >= 1  # other instances may be due too

    def event_types(self) -> list[str]:
        return [name for name, _ in self.events()]

    def payloads(self, event_type: str) -> list[dict[str, Any]]:
        return [payload for name, payload in self.events() if name == event_type]

    def journal(self) -> list[tuple[str, dict[str, Decimal]]]:
        """(kind, {account: signed amount}) per entry of the instance; each must balance."""
        with self.container.runtime.uow(write=False) as uow:
            entries = uow.session.scalars(
                select(JournalEntry)
                .where(JournalEntry.instance_id == self.instance_id)
                .order_by(JournalEntry.id)
            ).all()
            result = []
            for entry in entries:
                debit = sum((line.debit for line in entry.lines), Decimal(0))
                credit = sum((line.credit for line in entry.lines), Decimal(0))
                assert debit == credit and debit > 0, (entry.source_key, debit, credit)
                assert all(line.po_no == self.po_no for line in entry.lines), entry.source_key
                amounts: dict[str, Decimal] = {}
                for line in entry.lines:
                    amounts[line.account] = (
                        amounts.get(line.account, Decimal(0)) + line.debit - line.credit
                    )
                result.append((entry.kind, amounts))
            return result


@contextmanager
def erp_numbering_pos(api: P2PApi, erp_po_no: str) -> Iterator[None]:
    """An ERP webhook that answers `po.issued` with its own PO number (DESIGN §4); within, a
    PO issued and the outbox dispatched takes that number as its alias."""

    class ERP(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            event = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = b"{}"
            if event["type"] == "po.issued":
                answer = json.dumps({"po_no": erp_po_no}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *args: Any) -> None:
            pass

    erp = ThreadingHTTPServer(("127.0.0.1", 0), ERP)
    threading.Thread(target=erp.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{erp.server_address[1]}/events"
        body = {"url": url, "events": ["*"], "secret": "s" * 32}
        api.ok("POST", "/webhooks", who="admin", json=body)
        yield
    finally:
        erp.shutdown()
        erp.server_close()


USERS = {
    "peter": (["dept_manager"], ["dept_manager"]),
    "dora": (["dept_manager"], ["dept_manager"]),
    "dana": (["dept_manager", "finance_director"], ["dept_manager", "finance_director"]),
    "frank": (["finance_director"], ["finance_director"]),
    "cfo": (["cfo"], ["cfo"]),
    "quinn": (["qa_manager"], ["qa_manager"]),
    "amy": (["ap_clerk"], ["ap_clerk"]),
    "alex": (["ap_clerk"], ["ap_clerk"]),
    "mark": (["ap_manager"], ["ap_manager"]),
    "admin": (["admin"], []),
    "auditor": (["auditor"], []),
}


def make_api(container: Container, start: datetime | None = None) -> P2PApi:
    # Timers follow this clock (engine/runtime/clock.py): tests move it to fire them.
    clock = Clock(start or datetime.now(UTC) - timedelta(days=10))
    container.runtime.clock = clock
    with container.runtime.uow() as uow:
        container.runtime.catalog.deploy(
            uow, [SourceFile("procure_to_pay.bpmn", MODEL.read_bytes())], "test"
        )
        uow.commit()
    tokens = {user: container.tokens.issue(user, *groups) for user, groups in USERS.items()}
    tokens["erp"] = container.tokens.create_key("erp", ["erp_system"])
    return P2PApi(container, create_app(container=container).test_client(), tokens, clock)
