"""an inspection asks whether other receipts of its lot still wait for QA

A lot received again while released goes back to quarantine until its new units are inspected,
and it is released only when no receipt of it waits any more. This index answers that question
from the lot's receipts alone, however many receipts the table holds.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_receipt_lot_status", "goods_receipt_line", ["gtin", "lot", "status"])


def downgrade() -> None:
    op.drop_index("ix_receipt_lot_status", table_name="goods_receipt_line")
