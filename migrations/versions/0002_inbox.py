"""claim,delegate,comments,task_state_and_escalation (inbox)

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
UTC = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("state", sa.String(length=20), nullable=False, server_default="created")
        )
        batch_op.add_column(sa.Column("claimed_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("claimed_at", UTC, nullable=True))
        batch_op.add_column(sa.Column("delegated_to", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("delegated_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("delegation_id", BigId, nullable=True))
        batch_op.add_column(sa.Column("sla_business_days", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("escalation_level", sa.Integer(), nullable=False, server_default="0")
        )
        batch_op.add_column(sa.Column("escalation_check_at", UTC, nullable=True))
        batch_op.create_index("ix_task_status_due", ["status", "due_at"], unique=False)
        batch_op.create_index(
            "ix_task_completed_by",
            ["completed_by", "status", "due_at", "created_at", "id"],
            unique=False,
        )
        batch_op.drop_index("ix_task_assignee_status_due")
        batch_op.create_index(
            "ix_task_assignee_status_due",
            ["assignee", "status", "due_at", "created_at", "id"],
            unique=False,
        )
        batch_op.create_index("ix_task_escalation_check", ["escalation_check_at"], unique=False)
    # Tasks closed before this revision keep their final state.
    op.execute("UPDATE human_task SET state = status WHERE status <> 'open'")

    with op.batch_alter_table("task_candidate", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("status", sa.String(length=20), nullable=False, server_default="open")
        )
        batch_op.add_column(sa.Column("due_at", UTC, nullable=True))
        batch_op.add_column(sa.Column("created_at", UTC, nullable=True))
        batch_op.drop_index("ix_candidate_lookup")
        batch_op.create_index(
            "ix_candidate_inbox",
            ["kind", "name", "status", "due_at", "created_at", "task_id"],
            unique=False,
        )
    # `open` means offered and unheld; a held or closed task leaves the group inboxes.
    op.execute(
        "UPDATE task_candidate SET status = (SELECT CASE WHEN h.status <> 'open' THEN h.status"
        " WHEN h.assignee IS NOT NULL THEN 'assigned' ELSE 'open' END FROM human_task h"
        " WHERE h.id = task_candidate.task_id)"
    )
    for column in ("due_at", "created_at"):
        op.execute(
            f"UPDATE task_candidate SET {column} = (SELECT h.{column} FROM human_task h"
            " WHERE h.id = task_candidate.task_id)"
        )

    op.create_table(
        "task_comment",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("author", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["human_task.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_comment_task", "task_comment", ["task_id", "id"])
    op.create_index("ix_comment_instance", "task_comment", ["instance_id", "id"])

    op.create_table(
        "delegation",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("delegator", sa.String(length=200), nullable=False),
        sa.Column("delegate", sa.String(length=200), nullable=False),
        sa.Column("process_key", sa.String(length=200), nullable=True),
        sa.Column("valid_from", UTC, nullable=False),
        sa.Column("valid_to", UTC, nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTC, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_delegation_pair", "delegation", ["delegator", "delegate", "valid_to"])
    op.create_index("ix_delegation_delegate", "delegation", ["delegate", "valid_to"])

    op.create_table(
        "task_escalation",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("instance_id", sa.String(length=32), nullable=False),
        sa.Column("level", sa.Integer(), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("target", sa.String(length=200), nullable=True),
        sa.Column("decision_id", BigId, nullable=True),
        sa.Column("created_at", UTC, nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["human_task.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("task_id", "level", name="uq_escalation_task_level"),
    )


def downgrade() -> None:
    op.drop_table("task_escalation")
    op.drop_index("ix_delegation_delegate", table_name="delegation")
    op.drop_index("ix_delegation_pair", table_name="delegation")
    op.drop_table("delegation")
    op.drop_index("ix_comment_instance", table_name="task_comment")
    op.drop_index("ix_comment_task", table_name="task_comment")
    op.drop_table("task_comment")
    with op.batch_alter_table("task_candidate", schema=None) as batch_op:
        batch_op.drop_index("ix_candidate_inbox")
        batch_op.create_index("ix_candidate_lookup", ["kind", "name", "task_id"], unique=False)
        for name in ("created_at", "due_at", "status"):
            batch_op.drop_column(name)
    with op.batch_alter_table("human_task", schema=None) as batch_op:
        batch_op.drop_index("ix_task_escalation_check")
        batch_op.drop_index("ix_task_completed_by")
        batch_op.drop_index("ix_task_assignee_status_due")
        batch_op.create_index(
            "ix_task_assignee_status_due", ["assignee", "status", "due_at"], unique=False
        )
        batch_op.drop_index("ix_task_status_due")
        for name in (
            "escalation_check_at",
            "escalation_level",
            "sla_business_days",
            "delegation_id",
            "delegated_by",
            "delegated_to",
            "claimed_at",
            "claimed_by",
            "state",
        ):
            batch_op.drop_column(name)
