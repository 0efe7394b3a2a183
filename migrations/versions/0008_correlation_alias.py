"""correlation aliases (the ERP's own PO number) and purchase_order.erp_po_no

Revision ID: 0008
Revises: 0007
"""

import sqlalchemy as sa
from alembic import op

from domain.types import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "correlation_alias",
        sa.Column("alias", sa.String(200), primary_key=True),
        sa.Column("canonical", sa.String(200), nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    with op.batch_alter_table("purchase_order") as batch:
        batch.add_column(sa.Column("erp_po_no", sa.String(64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("purchase_order") as batch:
        batch.drop_column("erp_po_no")
    op.drop_table("correlation_alias")
