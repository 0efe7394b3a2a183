"""write_off: bad debt the ERP wrote off, an input of the credit score

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

from domain.types import BigId, Money, UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "write_off",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("receivable_id", BigId, sa.ForeignKey("receivable.id"), nullable=False),
        sa.Column("reference", sa.String(120), nullable=False, unique=True),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("written_off_on", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_write_off_receivable_id", "write_off", ["receivable_id"])


def downgrade() -> None:
    op.drop_index("ix_write_off_receivable_id", table_name="write_off")
    op.drop_table("write_off")
