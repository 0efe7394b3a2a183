"""The audit trail for auditors: query, JSON-lines export and chain verification (issue 7)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from datetime import datetime
from typing import Any

from flask import Blueprint, Response, request
from sqlalchemy import func, select

from api.errors import BadRequest
from api.requests import day_or_instant, page_args, runtime
from engine.store.audit import AuditEvent, event_as_dict, query_events, verify_chain

bp = Blueprint("audit", __name__, url_prefix="/api/v1/audit")

EXPORT_BATCH = 500


def _moment(name: str, end: bool) -> datetime | None:
    """An ISO date (whole day; `to` includes it) or an ISO datetime (UTC when naive)."""
    raw = request.args.get(name)
    if not raw:
        return None
    moment = day_or_instant(raw, end, naive_is_utc=True)
    if moment is None:
        raise BadRequest(
            f"'{name}' must be an ISO date or datetime",
            [{"field": name, "message": "must be an ISO date (2026-11-23) or datetime"}],
        )
    return moment


def _filtered() -> Any:
    entity = request.args.get("entity") or None
    if entity is not None and len(entity) > 500:
        raise BadRequest("'entity' is too long", [{"field": "entity", "message": "too long"}])
    return query_events(entity, _moment("from", end=False), _moment("to", end=True))


@bp.get("")
def list_events():
    page, size = page_args()
    stmt = _filtered()
    with runtime().uow(write=False) as uow:
        total = uow.session.execute(select(func.count()).select_from(stmt.subquery())).scalar_one()
        rows = uow.session.execute(stmt.offset((page - 1) * size).limit(size)).scalars()
        items = [event_as_dict(row) for row in rows]
    return {"items": items, "total": total, "page": page, "page_size": size}


@bp.get("/export")
def export_events():
    """Every matching event as one JSON object per line, streamed in chain order."""
    stmt = _filtered()
    uow_factory = runtime().uow

    def lines() -> Iterator[str]:
        last = 0
        while True:
            with uow_factory(write=False) as uow:
                rows = list(
                    uow.session.execute(
                        stmt.where(AuditEvent.seq > last).limit(EXPORT_BATCH)
                    ).scalars()
                )
                if not rows:
                    return
                last = rows[-1].seq
                chunk = "".join(json.dumps(event_as_dict(r), sort_keys=True) + "\n" for r in rows)
            yield chunk

    # The first batch is read before the 200 goes out: a query that fails there is answered
    # as a problem, where once streaming has begun it could only cut the download short.
    stream = lines()
    first = next(stream, "")
    return Response(
        itertools.chain([first], stream),
        mimetype="application/x-ndjson",
        headers={"Content-Disposition": "attachment; filename=audit.jsonl"},
    )


@bp.get("/verify")
def verify():
    with runtime().uow(write=False) as uow:
        return verify_chain(uow.session).as_dict()
