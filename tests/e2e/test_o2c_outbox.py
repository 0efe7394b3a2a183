"""The ERP receives O2C events from the real server's outbox through a signed webhook (issue 4).

A small HTTP receiver runs in a thread of the test; the server under test is the real
`flowgate serve` subprocess with a short tick and a short retry backoff.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import ROOT, Server, start_server

GTIN = "06901234567892"
SECRET = "erp-webhook-secret-0123456789"


@dataclass
class Receiver:
    """An ERP endpoint that answers 500 to the first `fail_first` tries of every event."""

    fail_first: int
    tries: Counter[str] = field(default_factory=Counter)
    accepted: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def handle(self, headers: Any, body: bytes) -> int:
        key = headers.get("Idempotency-Key", "")
        expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
        with self.lock:
            if not hmac.compare_digest(headers.get("X-Flowgate-Signature", ""), expected):
                self.bad_signatures.append(key)
                return 401
            self.tries[key] += 1
            if self.tries[key] <= self.fail_first:
                return 500
            self.accepted.append({"key": key, **json.loads(body)})
            return 200

    def accepted_keys(self) -> Counter[str]:
        with self.lock:
            return Counter(item["key"] for item in self.accepted)


@pytest.fixture
def receiver_factory() -> Iterator[Any]:
    servers: list[ThreadingHTTPServer] = []

    def make(fail_first: int) -> tuple[Receiver, str]:
        receiver = Receiver(fail_first)

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status = receiver.handle(self.headers, body)
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:  # keep the test output quiet
                pass

        httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=httpd.serve_forever, daemon=True).start()
        servers.append(httpd)
        return receiver, f"http://127.0.0.1:{httpd.server_address[1]}/erp/events"

    yield make
    for httpd in servers:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def o2c_server(tmp_path: Path) -> Iterator[Server]:
    (tmp_path / "processes").mkdir()
    (tmp_path / "processes" / "order_to_cash.bpmn").write_bytes(
        (ROOT / "processes" / "order_to_cash.bpmn").read_bytes()
    )
    # Three tries: two refusals and the third succeeds, or three refusals dead-letter the row.
    srv = start_server(
        tmp_path,
        {"FLOWGATE_OUTBOX_BACKOFF_SECONDS": "0.05", "FLOWGATE_OUTBOX_DEAD_AFTER": "3"},
    )
    yield srv
    srv.stop()


def ok(server: Server, method: str, path: str, body: Any = None, token: str = "erp", **kw: Any):
    status, answer = server.call(method, f"/api/v1{path}", body, token, **kw)
    assert status < 300, (method, path, status, answer)
    return answer


def subscribe(server: Server, url: str) -> None:
    ok(server, "POST", "/webhooks", {"url": url, "events": ["*"], "secret": SECRET}, "admin")


def start_order(server: Server, order_no: str) -> dict[str, Any]:
    ok(server, "PUT", "/customers/E2E-A", {
        "name": "Grade A Hospital", "currency": "CNY", "credit_limit": "500000.00",
        "payment_terms_days": 30, "license_expires_on": "2030-12-31", "grade": "A",
    })  # fmt: skip
    ok(server, "PUT", f"/lots/{GTIN}/LE2E", {
        "expiry_date": "2029-06-30", "status": "released", "unit_cost": "50.00", "qty_on_hand": 10,
    })  # fmt: skip
    order = {
        "order_no": order_no,
        "customer_id": "E2E-A",
        "currency": "CNY",
        "order_date": "2026-11-23",
        "requested_ship_date": "2026-11-25",
        "lines": [
            {"line_no": 1, "gtin": GTIN, "lot": "LE2E", "qty": 2,
             "unit_price": "1200.00", "tax_rate": "0.13"},
        ],
    }  # fmt: skip
    return ok(
        server,
        "POST",
        "/processes/order_to_cash/instances",
        {"business_key": order_no, "variables": {"order": order}},
        headers={"Idempotency-Key": order_no},
    )


def message(server: Server, name: str, order_no: str, payload: dict[str, Any]) -> dict[str, Any]:
    body = {"name": name, "correlation_key": order_no, "payload": {"order_no": order_no, **payload}}
    return ok(server, "POST", "/messages", body)


def outbox(server: Server, query: str) -> list[dict[str, Any]]:
    return ok(server, "GET", f"/outbox?{query}&page_size=100", token="auditor")["items"]


def wait_for(check, seconds: float = 30.0) -> Any:
    deadline = time.monotonic() + seconds
    while True:
        result = check()
        if result or time.monotonic() > deadline:
            return result
        time.sleep(0.1)


def test_each_o2c_event_reaches_the_erp_once_per_key_after_two_refused_tries(
    o2c_server, receiver_factory
):
    server = o2c_server
    receiver, url = receiver_factory(fail_first=2)
    subscribe(server, url)
    started = start_order(server, "SO-E2E-1")
    assert [w["name"] for w in started["waiting_for"]] == ["shipment_confirmed"], started
    udis = [f"(01){GTIN}(17)290630(10)LE2E(21)S{n}" for n in (1, 2)]
    message(server, "shipment_confirmed", "SO-E2E-1", {
        "ship_date": "2026-11-25", "lines": [{"line_no": 1, "qty": 2, "udis": udis}],
    })  # fmt: skip
    paid = message(server, "payment_received", "SO-E2E-1", {
        "invoice_no": "INV-SO-E2E-1", "amount": "2712.00", "paid_on": "2026-12-20",
    })  # fmt: skip
    assert paid["instance_status"] == "completed", paid

    def all_sent() -> list[dict[str, Any]] | None:
        rows = outbox(server, f"instance_id={started['id']}")
        return rows if rows and all(r["status"] == "sent" for r in rows) else None

    rows = wait_for(all_sent)
    assert rows, outbox(server, f"instance_id={started['id']}")
    events = [r["event_type"] for r in rows]
    for expected in ("order.released", "shipment.requested", "invoice.posted", "journal.posted"):
        assert expected in events, events
    # Goods issue, invoice and payment each post one journal entry, each its own event.
    assert events.count("journal.posted") == 3, events
    keys = {r["idempotency_key"] for r in rows}
    assert len(keys) == len(rows)
    arrived = receiver.accepted_keys()
    assert {k: arrived[k] for k in keys} == dict.fromkeys(keys, 1)
    assert all(receiver.tries[k] == 3 for k in keys), receiver.tries
    assert all(r["attempts"] == 3 and "500" in (r["last_error"] or "") for r in rows), rows
    assert receiver.bad_signatures == []
    by_key = {item["key"]: item for item in receiver.accepted}
    for row in rows:
        delivered = by_key[row["idempotency_key"]]
        assert delivered["id"] == row["idempotency_key"]
        assert delivered["type"] == row["event_type"]
        assert delivered["instance_id"] == started["id"]
    released = next(
        by_key[r["idempotency_key"]] for r in rows if r["event_type"] == "order.released"
    )
    assert released["payload"]["order_no"] == "SO-E2E-1"
    # Nothing more arrives on later ticks: the rows are done, not retried.
    time.sleep(1.0)
    assert receiver.accepted_keys() == arrived
    assert outbox(server, "status=dead") == []


def test_an_event_the_erp_keeps_refusing_is_dead_lettered_and_listed(o2c_server, receiver_factory):
    server = o2c_server
    receiver, url = receiver_factory(fail_first=1000)
    subscribe(server, url)
    started = start_order(server, "SO-E2E-2")

    def dead() -> list[dict[str, Any]]:
        rows = outbox(server, f"instance_id={started['id']}")
        return rows if rows and all(r["status"] == "dead" for r in rows) else []

    rows = wait_for(dead)
    assert rows, outbox(server, f"instance_id={started['id']}")
    listed = {r["idempotency_key"] for r in outbox(server, "status=dead")}
    assert {r["idempotency_key"] for r in rows} <= listed
    assert {"order.released", "shipment.requested"} <= {r["event_type"] for r in rows}
    for row in rows:
        assert row["attempts"] == 3 and row["sent_at"] is None
        assert "500" in row["last_error"], row
        assert receiver.tries[row["idempotency_key"]] == 3
    # A dead row is not tried again.
    time.sleep(1.0)
    assert all(receiver.tries[r["idempotency_key"]] == 3 for r in rows)
    assert receiver.accepted == []
