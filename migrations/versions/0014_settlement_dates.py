"""the receivables KPI report reads settlements by date

Open AR at the end of a past period adds back the payments and write-offs dated after it, and
the bad-debt ratio sums the write-offs dated in it (domain/kpis.py). Without these indexes
each report read every payment and write-off ever booked.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_payment_paid_on", "payment", ["paid_on"])
    op.create_index("ix_write_off_written_off_on", "write_off", ["written_off_on"])


def downgrade() -> None:
    op.drop_index("ix_write_off_written_off_on", table_name="write_off")
    op.drop_index("ix_payment_paid_on", table_name="payment")
