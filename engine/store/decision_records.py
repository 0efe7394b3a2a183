"""Queries over stored decision records: by instance, by id, and by period for a replay."""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from typing import Any

from sqlalchemy import select

from engine.errors import NotFound
from engine.store.tables import DecisionRecord
from engine.store.uow import UnitOfWork

# A what-if replay re-runs at most this many records (the newest of the period).
MAX_REPLAY_RECORDS = 20_000
# rules.decision.failed_closed: an engine failure recorded as a hold, with no parameters.
FAILED_CLOSED_RULE = "evaluation_failed"


def decision_as_dict(row: DecisionRecord) -> dict[str, Any]:
    return {
        "id": row.id,
        "instance_id": row.instance_id,
        "element_id": row.element_id,
        "ruleset_key": row.ruleset_key,
        "ruleset_version": row.ruleset_version,
        "parameter_version": row.parameter_version,
        "outcome": row.outcome,
        "created_at": row.created_at.isoformat(),
        "record": row.record,
    }


def list_decisions(
    uow: UnitOfWork,
    instance_id: str | None = None,
    ruleset_key: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> list[dict[str, Any]]:
    """Newest first; an instance's decisions in the order they were taken."""
    query = select(DecisionRecord)
    if instance_id is not None:
        query = query.where(DecisionRecord.instance_id == instance_id).order_by(DecisionRecord.id)
    else:
        query = query.order_by(DecisionRecord.id.desc())
    if ruleset_key is not None:
        query = query.where(DecisionRecord.ruleset_key == ruleset_key)
    query = query.offset((page - 1) * page_size).limit(page_size)
    return [decision_as_dict(row) for row in uow.session.execute(query).scalars()]


def get_decision(uow: UnitOfWork, decision_id: int) -> dict[str, Any]:
    row = uow.session.get(DecisionRecord, decision_id)
    if row is None:
        raise NotFound(f"no decision {decision_id}")
    return decision_as_dict(row)


def records_for_replay(
    uow: UnitOfWork, ruleset_key: str, first_day: date, last_day: date
) -> tuple[list[dict[str, Any]], bool]:
    """Replayable records taken on `first_day`..`last_day` (UTC, inclusive), and whether the
    period held more than MAX_REPLAY_RECORDS.

    Failed-closed holds are left out: they have no parameters to re-run with.
    """
    start = datetime.combine(first_day, time.min, tzinfo=UTC)
    # The day's last instant, not the next day's first: there is none after 9999-12-31.
    end = datetime.combine(last_day, time.max, tzinfo=UTC)
    rows = list(
        uow.session.execute(
            select(DecisionRecord.record)
            .where(
                DecisionRecord.ruleset_key == ruleset_key,
                DecisionRecord.created_at >= start,
                DecisionRecord.created_at <= end,
            )
            .order_by(DecisionRecord.id.desc())
            .limit(MAX_REPLAY_RECORDS + 1)
        ).scalars()
    )
    truncated = len(rows) > MAX_REPLAY_RECORDS
    records = [
        record
        for record in reversed(rows[:MAX_REPLAY_RECORDS])
        if not any(f["rule_id"] == FAILED_CLOSED_RULE for f in record.get("fired", []))
    ]
    return records, truncated
