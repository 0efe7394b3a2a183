"""Background sweeps: due timers, task escalations, expired buffered messages, outbox dispatch,
and copying SQLite's write-ahead log into the database file.

Any number of processes may run these against one database: each timer is fired under its
instance's row lock (SKIP LOCKED on PostgreSQL, the database write lock on SQLite) and its row
is deleted in the same transaction, so it fires exactly once.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy import select

from engine.escalation import sweep_escalations
from engine.runtime.commands import Runtime, fire_timer
from engine.store.db import checkpoint
from engine.store.tables import BufferedMessage, OutboxMessage, Timer, Webhook
from engine.webhook_targets import OPENER, check_resolved

log = logging.getLogger("flowgate.scheduler")

# Sends one outbox row to its webhooks; returns the first JSON object a webhook answered with.
Sender = Callable[[OutboxMessage, list[Webhook]], "dict[str, Any] | None"]


def sweep_timers(rt: Runtime, batch: int = 200) -> int:
    """Fire every due timer; return how many fired here."""
    with rt.uow(write=False) as uow:
        due = (
            uow.session.execute(
                select(Timer.id)
                .where(Timer.due_at <= rt.clock())
                .order_by(Timer.due_at)
                .limit(batch)
            )
            .scalars()
            .all()
        )
    fired = 0
    for timer_id in due:
        try:
            fired += fire_timer(rt, timer_id)
        except Exception:
            # One bad timer must not stop the others; its instance shows the incident.
            log.exception("timer %s could not be fired", timer_id)
    return fired


def sweep_buffer(rt: Runtime, batch: int = 200) -> int:
    """Expire buffered messages whose time-to-live ran out; return how many.

    Nothing is deleted: the row is marked expired (and so never delivered later), and a
    `message.expired` outbox event hands it back to the ERP with its payload, so a message
    sent too early is answered, not lost.
    """
    now = rt.clock()
    with rt.uow() as uow:
        stmt = (
            select(BufferedMessage)
            .where(BufferedMessage.expires_at <= now, BufferedMessage.expired_at.is_(None))
            .order_by(BufferedMessage.id)
            .limit(batch)
        )
        rows = uow.session.scalars(uow.for_update(stmt, skip_locked=True)).all()
        for row in rows:
            row.expired_at = now
            uow.session.add(
                OutboxMessage(
                    idempotency_key=f"message-expired:{row.id}",
                    event_type="message.expired",
                    instance_id=None,
                    payload=row.as_event(),
                    next_attempt_at=now,
                    created_at=now,
                )
            )
        uow.commit()
        return len(rows)


def sign(secret: str, body: bytes) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def post_to_webhooks(message: OutboxMessage, hooks: list[Webhook]) -> dict[str, Any] | None:
    body = json.dumps(
        {
            "id": message.idempotency_key,
            "type": message.event_type,
            "instance_id": message.instance_id,
            "payload": message.payload,
        },
        separators=(",", ":"),
    ).encode()
    reply: dict[str, Any] | None = None
    for hook in hooks:
        target = urllib.parse.urlsplit(hook.url)
        check_resolved(target.hostname or "", target.port)
        request = urllib.request.Request(
            hook.url,
            data=body,
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": message.idempotency_key,
                "X-Flowgate-Signature": sign(hook.secret, body),
            },
        )
        with OPENER.open(request, timeout=10) as response:
            answer = response.read()
            if reply is None and response.headers.get_content_type() == "application/json":
                reply = _json_object(answer)
    return reply


def _json_object(body: bytes) -> dict[str, Any] | None:
    try:
        parsed = json.loads(body)
    except ValueError:
        return None
    return parsed if isinstance(parsed, dict) else None


# How long a row being sent is withheld from other dispatchers; if the sending process dies,
# the row is sent again after this (at least once: receivers dedupe on Idempotency-Key).
OUTBOX_LEASE = timedelta(seconds=120)


def dispatch_outbox(
    rt: Runtime,
    sender: Sender = post_to_webhooks,
    batch: int = 50,
    dead_after: int = 8,
    backoff_seconds: float = 1.0,
    budget_seconds: float = 5.0,
) -> int:
    """Send pending outbox rows at least once; back off exponentially, then dead-letter.

    The n-th failed try waits `backoff_seconds * 2**n` before the next; the `dead_after`-th
    failed try dead-letters the row (GET /outbox?status=dead). Rows are leased in one short
    transaction, sent with none open, and settled in another: a slow ERP endpoint must not
    hold SQLite's write lock (every command would queue behind it) or PostgreSQL row locks.
    A full batch is followed at once by the next, for up to `budget_seconds`: one batch per
    tick let the outbox fall ever further behind any load above `batch` events a second.
    """
    sent = 0
    deadline = time.monotonic() + budget_seconds
    while True:
        leased, done = _dispatch_batch(rt, sender, batch, dead_after, backoff_seconds)
        sent += done
        if leased < batch or time.monotonic() >= deadline:
            return sent


def _dispatch_batch(
    rt: Runtime, sender: Sender, batch: int, dead_after: int, backoff_seconds: float
) -> tuple[int, int]:
    """Lease, send and settle up to `batch` due rows; (how many were leased, how many sent)."""
    now = rt.clock()
    due = (OutboxMessage.status == "pending", OutboxMessage.next_attempt_at <= now)
    # Look first in a read transaction: every process ticks every second, and on SQLite a
    # write transaction that finds nothing would still take the one write lock each time.
    with rt.uow(write=False) as uow:
        if uow.session.scalar(select(OutboxMessage.id).where(*due).limit(1)) is None:
            return 0, 0
    with rt.uow() as uow:
        rows = (
            uow.session.execute(
                uow.for_update(
                    select(OutboxMessage).where(*due).order_by(OutboxMessage.id).limit(batch),
                    skip_locked=True,
                )
            )
            .scalars()
            .all()
        )
        if not rows:
            return 0, 0
        for row in rows:
            row.attempts += 1
            row.next_attempt_at = now + OUTBOX_LEASE
        hooks = list(uow.session.execute(select(Webhook).where(Webhook.active)).scalars())
        uow.commit()
    # Detached but loaded (expire_on_commit is off): read without a transaction.
    outcomes: list[tuple[int, dict[str, Any] | None, str | None]] = []
    for row in rows:
        targets = [h for h in hooks if row.event_type in h.events or "*" in h.events]
        try:
            outcomes.append((row.id, sender(row, targets) if targets else None, None))
        except Exception as exc:
            outcomes.append((row.id, None, f"{type(exc).__name__}: {exc}"[:1000]))
    return len(rows), _settle_outbox(rt, outcomes, dead_after, backoff_seconds)


def _settle_outbox(
    rt: Runtime,
    outcomes: list[tuple[int, dict[str, Any] | None, str | None]],
    dead_after: int,
    backoff_seconds: float,
) -> int:
    sent = 0
    with rt.uow() as uow:
        now = rt.clock()
        # One query for the batch: a read per row made settling cost more than sending.
        settled = {
            row.id: row
            for row in uow.session.scalars(
                select(OutboxMessage).where(OutboxMessage.id.in_([o[0] for o in outcomes]))
            )
        }
        for row_id, reply, error in outcomes:
            row = settled.get(row_id)
            if row is None or row.status != "pending":
                continue
            on_reply = rt.outbox_replies.get(row.event_type)
            if error is None and reply and on_reply is not None:
                try:
                    # In a savepoint: a reply we cannot use must not undo the other rows.
                    with uow.session.begin_nested():
                        on_reply(uow, row, reply)
                except Exception as exc:
                    error = f"reply to {row.event_type}: {type(exc).__name__}: {exc}"[:1000]
            if error is None:
                row.status, row.sent_at = "sent", now
                sent += 1
            else:
                row.last_error = error
                if row.attempts >= dead_after:
                    row.status = "dead"
                else:
                    row.next_attempt_at = now + timedelta(seconds=backoff_seconds * 2**row.attempts)
        uow.commit()
    return sent


class Scheduler:
    """APScheduler wiring: one interval job per sweep, never overlapping itself."""

    def __init__(
        self,
        rt: Runtime,
        tick_seconds: float = 1.0,
        sender: Sender = post_to_webhooks,
        outbox_dead_after: int = 8,
        outbox_backoff_seconds: float = 1.0,
    ):
        self.rt = rt
        self._scheduler = BackgroundScheduler(timezone="UTC")

        def outbox() -> int:
            return dispatch_outbox(
                rt, sender, dead_after=outbox_dead_after, backoff_seconds=outbox_backoff_seconds
            )

        jobs: list[tuple[str, Callable[[], Any], float]] = [
            ("timers", lambda: sweep_timers(rt), tick_seconds),
            ("outbox", outbox, tick_seconds),
            ("message-buffer", lambda: sweep_buffer(rt), 60.0),
            ("wal-checkpoint", lambda: checkpoint(rt.uow.engine), tick_seconds),
        ]
        rules = getattr(rt.rules, "rules", None)
        if rules is not None:
            # Escalation ages are whole business days; a minute's delay is invisible.
            jobs.append(("escalations", lambda: sweep_escalations(rt, rules), 60.0))
        for name, func, seconds in jobs:
            self._scheduler.add_job(
                self._guarded(name, func),
                "interval",
                seconds=seconds,
                id=name,
                max_instances=1,
                coalesce=True,
            )

    @staticmethod
    def _guarded(name: str, func: Callable[[], Any]) -> Callable[[], None]:
        def run() -> None:
            try:
                func()
            except Exception:
                log.exception("scheduler job %s failed", name)

        return run

    def start(self) -> None:
        self._scheduler.start()

    def shutdown(self) -> None:
        if self._scheduler.running:
            self._scheduler.shutdown(wait=True)
