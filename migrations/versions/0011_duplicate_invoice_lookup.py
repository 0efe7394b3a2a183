"""the duplicate-invoice check reads only the candidates, not the supplier's every invoice

The check compares a new invoice with the supplier's earlier ones of the same normalised number
(ix_vendor_invoice_number) or the same currency and gross amount (this index). It used to load
every invoice the supplier ever sent, so a regular supplier's invoices took longer each year.

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_vendor_invoice_amount", "vendor_invoice", ["supplier_id", "gross_total", "currency"]
    )


def downgrade() -> None:
    op.drop_index("ix_vendor_invoice_amount", table_name="vendor_invoice")
