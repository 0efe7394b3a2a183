"""customer credit scoring: nightly score runs and downgrade risk events (issue 3, credit_score)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

from domain.types import BigId, Money, UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "customer_score_run",
        _id(),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("previous_grade", sa.String(1), nullable=True),
        sa.Column("recommended_limit", Money(), nullable=False),
        sa.Column("payment_terms", sa.String(40), nullable=False),
        sa.Column("decision_id", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("customer_id", "as_of", name="uq_customer_score_run_day"),
    )
    op.create_table(
        "customer_risk_event",
        _id(),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("as_of", sa.Date(), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("previous_grade", sa.String(1), nullable=False),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("decision_id", BigId, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("customer_id", "as_of", name="uq_customer_risk_event_day"),
    )


def downgrade() -> None:
    op.drop_table("customer_risk_event")
    op.drop_table("customer_score_run")
