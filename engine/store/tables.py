"""SQLAlchemy tables for the engine: definitions, instances and their projections.

The workflow state lives in one compressed blob per instance; every other table here is a
projection of it (tasks, timers, subscriptions) or an append-only record (history, outbox),
so queries never need to open a blob.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from domain.types import BigId, UTCDateTime, utcnow


class Base(DeclarativeBase):
    type_annotation_map = {datetime: UTCDateTime, dict[str, Any]: JSON, list[Any]: JSON}


class Definition(Base):
    __tablename__ = "definition"
    __table_args__ = (
        UniqueConstraint("key", "version", name="uq_definition_key_version"),
        Index("ix_definition_key_checksum", "key", "checksum"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    checksum: Mapped[str] = mapped_column(String(64))
    # The uploaded XML, read only to re-parse a version this process has not cached yet or to
    # serve it back; deferred so that loading a definition for every command does not read it.
    files: Mapped[list[Any]] = mapped_column(JSON, deferred=True)
    elements: Mapped[dict[str, Any]] = mapped_column(JSON)
    deployed_by: Mapped[str | None] = mapped_column(String(200))
    deployed_at: Mapped[datetime] = mapped_column(default=utcnow)


class Instance(Base):
    __tablename__ = "instance"
    __table_args__ = (
        Index("ix_instance_process_status", "process_key", "status"),
        Index("ix_instance_business_key", "business_key"),
        Index("ix_instance_status_updated", "status", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    definition_id: Mapped[int] = mapped_column(ForeignKey("definition.id"))
    process_key: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    business_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    state: Mapped[bytes] = mapped_column(LargeBinary)
    variables: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    incident: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    lock_version: Mapped[int] = mapped_column(Integer, default=1)
    started_by: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    ended_at: Mapped[datetime | None] = mapped_column()

    __mapper_args__ = {"version_id_col": lock_version}


class HumanTask(Base):
    __tablename__ = "human_task"
    __table_args__ = (
        # Covering (id last), so an inbox is read from indexes and only its page from rows.
        Index("ix_task_assignee_status_due", "assignee", "status", "due_at", "created_at", "id"),
        Index("ix_task_status_created", "status", "created_at"),
        # Two columns, so SQLite without statistics does not walk every open task instead.
        Index("ix_task_instance_status", "instance_id", "status"),
        Index("ix_task_business_status", "business_key", "status", "created_at", "id"),
        # Inbox (issue 6): "all open, by due date", "what I completed", the escalation sweep.
        Index("ix_task_status_due", "status", "due_at"),
        Index("ix_task_completed_by", "completed_by", "status", "due_at", "created_at", "id"),
        Index("ix_task_escalation_check", "escalation_check_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instance.id"))
    element_id: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(400))
    process_key: Mapped[str] = mapped_column(String(200))
    business_key: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))
    assignee: Mapped[str | None] = mapped_column(String(200))
    candidate_groups: Mapped[list[Any]] = mapped_column(JSON, default=list)
    candidate_users: Mapped[list[Any]] = mapped_column(JSON, default=list)
    due_at: Mapped[datetime | None] = mapped_column()
    form: Mapped[list[Any]] = mapped_column(JSON, default=list)
    properties: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column()
    completed_by: Mapped[str | None] = mapped_column(String(200))
    # The lifecycle (issue 6): created, claimed, delegated, escalated, completed, cancelled;
    # `status` stays the coarse open/completed/cancelled that queries filter on.
    state: Mapped[str] = mapped_column(String(20), default="created")
    claimed_by: Mapped[str | None] = mapped_column(String(200))
    claimed_at: Mapped[datetime | None] = mapped_column()
    delegated_to: Mapped[str | None] = mapped_column(String(200))
    delegated_by: Mapped[str | None] = mapped_column(String(200))
    delegation_id: Mapped[int | None] = mapped_column(BigId)
    sla_business_days: Mapped[int | None] = mapped_column(Integer)
    escalation_level: Mapped[int] = mapped_column(Integer, default=0)
    # Earliest moment the next escalation level can be due (calendar time is a lower bound of
    # business time), so the sweep reads an index instead of every open task.
    escalation_check_at: Mapped[datetime | None] = mapped_column()
    # Never loaded (lazy="raise"): it only tells the unit of work to insert the instance first
    # when both are new in one flush, as a new instance's first save is.
    instance: Mapped[Instance] = relationship(lazy="raise")


class TaskCandidate(Base):
    """One row per candidate group or user, so an inbox query is an index lookup.

    `status` is `open` only while the task is offered and unheld, so a group's inbox never
    visits claimed or closed tasks; the task's sort keys are copied here so that a whole inbox
    is counted and ordered from this one covering index.
    """

    __tablename__ = "task_candidate"
    __table_args__ = (
        Index("ix_candidate_inbox", "kind", "name", "status", "due_at", "created_at", "task_id"),
    )

    task_id: Mapped[str] = mapped_column(
        ForeignKey("human_task.id", ondelete="CASCADE"), primary_key=True
    )
    task: Mapped[HumanTask] = relationship(lazy="raise")  # orders the flush, as `instance`
    kind: Mapped[str] = mapped_column(String(10), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    status: Mapped[str] = mapped_column(String(20), default="open")
    due_at: Mapped[datetime | None] = mapped_column()
    created_at: Mapped[datetime | None] = mapped_column()


class TaskComment(Base):
    """An immutable remark on a task, shown on the task and in its instance's history."""

    __tablename__ = "task_comment"
    __table_args__ = (
        Index("ix_comment_task", "task_id", "id"),
        Index("ix_comment_instance", "instance_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id"))
    task: Mapped[HumanTask] = relationship(lazy="raise")  # orders the flush, as `instance`
    instance_id: Mapped[str] = mapped_column(String(32))
    author: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Delegation(Base):
    """A standing permission: `delegate` may act for `delegator` inside [valid_from, valid_to)."""

    __tablename__ = "delegation"
    __table_args__ = (
        Index("ix_delegation_pair", "delegator", "delegate", "valid_to"),
        Index("ix_delegation_delegate", "delegate", "valid_to"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    delegator: Mapped[str] = mapped_column(String(200))
    delegate: Mapped[str] = mapped_column(String(200))
    process_key: Mapped[str | None] = mapped_column(String(200))
    valid_from: Mapped[datetime] = mapped_column()
    valid_to: Mapped[datetime] = mapped_column()
    reason: Mapped[str | None] = mapped_column(Text)
    created_by: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class TaskEscalation(Base):
    """One row per task and level: the unique key makes an escalation happen once."""

    __tablename__ = "task_escalation"
    __table_args__ = (UniqueConstraint("task_id", "level", name="uq_escalation_task_level"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    task_id: Mapped[str] = mapped_column(ForeignKey("human_task.id"))
    task: Mapped[HumanTask] = relationship(lazy="raise")  # orders the flush, as `instance`
    instance_id: Mapped[str] = mapped_column(String(32))
    level: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(40))
    target: Mapped[str | None] = mapped_column(String(200))
    decision_id: Mapped[int | None] = mapped_column(BigId)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Timer(Base):
    __tablename__ = "timer"
    __table_args__ = (Index("ix_timer_due", "due_at"), Index("ix_timer_instance", "instance_id"))

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instance.id"))
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    due_at: Mapped[datetime] = mapped_column()
    # Never loaded (lazy="raise"): it only tells the unit of work to insert the instance first
    # when both are new in one flush, as a new instance's first save is.
    instance: Mapped[Instance] = relationship(lazy="raise")


class MessageSubscription(Base):
    __tablename__ = "message_subscription"
    __table_args__ = (
        Index("ix_subscription_lookup", "message_name", "correlation_key"),
        Index("ix_subscription_instance", "instance_id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(ForeignKey("instance.id"))
    task_id: Mapped[str] = mapped_column(String(36))
    element_id: Mapped[str] = mapped_column(String(200))
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_key: Mapped[str | None] = mapped_column(String(200))
    # Never loaded (lazy="raise"): it only tells the unit of work to insert the instance first
    # when both are new in one flush, as a new instance's first save is.
    instance: Mapped[Instance] = relationship(lazy="raise")


class BufferedMessage(Base):
    """A message that arrived before any instance waited for it (DESIGN §2, time-to-live)."""

    __tablename__ = "message_buffer"
    __table_args__ = (
        Index("ix_buffer_lookup", "message_name", "correlation_key"),
        Index("ix_buffer_live_expiry", "expired_at", "expires_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    message_name: Mapped[str] = mapped_column(String(200))
    correlation_key: Mapped[str | None] = mapped_column(String(200))
    message_id: Mapped[str | None] = mapped_column(String(200))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    received_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime] = mapped_column()
    # Set when the time-to-live ran out with nobody waiting: the row stays, for the ERP (a
    # `message.expired` outbox event) and the auditor, instead of the message vanishing.
    expired_at: Mapped[datetime | None] = mapped_column(default=None)

    def as_event(self) -> dict[str, Any]:
        """The message as handed back to the ERP (`message.expired`, `message.refused`)."""
        return {
            "name": self.message_name,
            "correlation_key": self.correlation_key,
            "message_id": self.message_id,
            "received_at": self.received_at.isoformat(),
            "expires_at": self.expires_at.isoformat(),
            "payload": self.payload,
        }


class InstanceEvent(Base):
    """Append-only history of one instance: what happened, where, and who did it."""

    __tablename__ = "instance_event"
    __table_args__ = (Index("ix_event_instance", "instance_id", "id"),)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str] = mapped_column(String(32))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    type: Mapped[str] = mapped_column(String(40))
    element_id: Mapped[str | None] = mapped_column(String(200))
    actor: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class OutboxMessage(Base):
    """A call to the outside, written in the command's transaction and sent after commit."""

    __tablename__ = "outbox"
    __table_args__ = (
        Index("ix_outbox_pending", "status", "next_attempt_at"),
        Index("ix_outbox_instance", "instance_id", "id"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    idempotency_key: Mapped[str] = mapped_column(String(200), unique=True)
    event_type: Mapped[str] = mapped_column(String(100))
    instance_id: Mapped[str | None] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column()


class IdempotencyRecord(Base):
    """The first answer to a request key (start Idempotency-Key, message_id)."""

    __tablename__ = "idempotency"

    scope: Mapped[str] = mapped_column(String(40), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column(Integer)
    response: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ApiKey(Base):
    __tablename__ = "api_key"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    roles: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()


class CorrelationAlias(Base):
    """Another name for a correlation key, e.g. the PO number the ERP gave a flowgate PO.

    A message that names the alias is delivered (or buffered) under the canonical key, so the
    ERP may use its own number from then on.
    """

    __tablename__ = "correlation_alias"

    alias: Mapped[str] = mapped_column(String(200), primary_key=True)
    canonical: Mapped[str] = mapped_column(String(200))
    instance_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Webhook(Base):
    __tablename__ = "webhook"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    url: Mapped[str] = mapped_column(String(2000))
    events: Mapped[list[Any]] = mapped_column(JSON)
    secret: Mapped[str] = mapped_column(String(200))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DecisionRecord(Base):
    """A rules evaluation inside a process, kept so it can be replayed exactly (DESIGN §3)."""

    __tablename__ = "decision"
    __table_args__ = (
        Index("ix_decision_instance", "instance_id"),
        Index("ix_decision_key_created", "ruleset_key", "created_at"),
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    instance_id: Mapped[str | None] = mapped_column(String(32))
    element_id: Mapped[str | None] = mapped_column(String(200))
    ruleset_key: Mapped[str] = mapped_column(String(100))
    ruleset_version: Mapped[int] = mapped_column(Integer)
    parameter_version: Mapped[int] = mapped_column(Integer)
    outcome: Mapped[str] = mapped_column(String(10))
    record: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class RulesetVersion(Base):
    __tablename__ = "ruleset_version"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    body: Mapped[dict[str, Any]] = mapped_column(JSON)
    published_by: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)


class ParameterVersion(Base):
    __tablename__ = "parameter_version"

    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    values: Mapped[dict[str, Any]] = mapped_column(JSON)
    effective_from: Mapped[str] = mapped_column(String(10))
    published_by: Mapped[str | None] = mapped_column(String(200))
    published_at: Mapped[datetime] = mapped_column(default=utcnow)
