"""The outbox sends with no transaction open, so a slow ERP never stalls the engine."""

from __future__ import annotations

import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select

from engine.runtime import commands
from engine.scheduler import dispatch_outbox
from engine.store.tables import OutboxMessage, Webhook
from tests.integration.conftest import ERP


def test_commands_run_while_the_erp_is_slow_to_answer_a_webhook(rt):
    arrived, release = threading.Event(), threading.Event()

    class SlowERP(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            arrived.set()
            release.wait(30)
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    erp = ThreadingHTTPServer(("127.0.0.1", 0), SlowERP)
    threading.Thread(target=erp.serve_forever, daemon=True).start()
    try:
        with rt.uow() as uow:
            url = f"http://127.0.0.1:{erp.server_address[1]}/events"
            uow.session.add(Webhook(url=url, events=["*"], secret="s" * 32))
            uow.session.add(
                OutboxMessage(
                    idempotency_key="slow-1",
                    event_type="order.released",
                    payload={"order_no": "SO-SLOW-1"},
                    next_attempt_at=rt.clock(),
                )
            )
            uow.commit()
        sending = threading.Thread(target=dispatch_outbox, args=(rt,))
        sending.start()
        assert arrived.wait(10), "the outbox never called the ERP"
        # While the ERP sits on the call, another command commits.
        started: list[Any] = []
        other = threading.Thread(
            target=lambda: started.append(
                commands.start(rt, "approval", "SO-SLOW-2", {"amount": 10}, ERP)
            )
        )
        other.start()
        other.join(20)
        assert started and started[0].status_code == 201
        assert sending.is_alive()
        release.set()
        sending.join(20)
    finally:
        release.set()
        erp.shutdown()
        erp.server_close()
    with rt.uow(write=False) as uow:
        status = uow.session.scalar(
            select(OutboxMessage.status).where(OutboxMessage.idempotency_key == "slow-1")
        )
    assert status == "sent"


def test_one_tick_sends_a_backlog_larger_than_its_batch(rt):
    with rt.uow() as uow:
        uow.session.add(Webhook(url="http://erp.invalid/events", events=["*"], secret="s" * 32))
        uow.session.add_all(
            OutboxMessage(
                idempotency_key=f"backlog-{n}",
                event_type="order.released",
                payload={"order_no": f"SO-{n}"},
                next_attempt_at=rt.clock(),
            )
            for n in range(120)
        )
        uow.commit()
    delivered: list[str] = []
    assert (
        dispatch_outbox(rt, sender=lambda row, hooks: delivered.append(row.idempotency_key)) == 120
    )
    with rt.uow(write=False) as uow:
        pending = uow.session.scalars(
            select(OutboxMessage.id).where(OutboxMessage.status == "pending")
        ).all()
    assert pending == []
    assert sorted(delivered) == sorted(f"backlog-{n}" for n in range(120))


def _serve(handler: type[BaseHTTPRequestHandler]) -> ThreadingHTTPServer:
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def _queue_event(rt, key: str, url: str) -> None:
    with rt.uow() as uow:
        uow.session.add(Webhook(url=url, events=["*"], secret="s" * 32))
        uow.session.add(
            OutboxMessage(
                idempotency_key=key,
                event_type="order.released",
                payload={"order_no": key},
                next_attempt_at=rt.clock(),
            )
        )
        uow.commit()


def _outbox_row(rt, key: str) -> tuple[str, int, str | None]:
    """(status, attempts, last_error) of the outbox row sent under `key`."""
    with rt.uow(write=False) as uow:
        row = uow.session.scalars(
            select(OutboxMessage).where(OutboxMessage.idempotency_key == key)
        ).one()
        return row.status, row.attempts, row.last_error


def test_a_receiver_that_redirects_is_a_failed_delivery_and_the_redirect_is_not_followed(rt):
    followed: list[str] = []

    class Target(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            followed.append(self.path)
            self.send_response(200)
            self.end_headers()

        do_POST = do_GET

        def log_message(self, *args: Any) -> None:
            pass

    target = _serve(Target)

    class Redirecting(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{target.server_address[1]}/else")
            self.end_headers()

        def log_message(self, *args: Any) -> None:
            pass

    erp = _serve(Redirecting)
    try:
        _queue_event(rt, "redirected-1", f"http://127.0.0.1:{erp.server_address[1]}/events")
        assert dispatch_outbox(rt) == 0
    finally:
        for server in (erp, target):
            server.shutdown()
            server.server_close()
    status, attempts, error = _outbox_row(rt, "redirected-1")
    assert (status, attempts) == ("pending", 1)
    assert "302" in error
    assert followed == []


def test_a_webhook_whose_name_now_resolves_to_a_link_local_address_is_not_called(rt, monkeypatch):
    # The name passed the check at registration; its DNS record was changed afterwards.
    def resolve(host, port, *args, **kwargs):
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("169.254.169.254", port or 80))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    _queue_event(rt, "rebound-1", "http://erp.example.test/events")

    assert dispatch_outbox(rt) == 0

    status, attempts, error = _outbox_row(rt, "rebound-1")
    assert (status, attempts) == ("pending", 1)
    assert "resolves to the link-local address 169.254.169.254" in error
