"""unit prices and rates keep 4 decimals

A PO line's unit price, its tax rate, a receipt line's unit cost and a vendor invoice line's
unit price were stored to the cent, so a price of 0.125 became 0.12: the goods receipt posted
less than the PO and a matching invoice was blocked as a price variance. On SQLite these
columns are text already (domain.types.Money); PostgreSQL widens its NUMERIC columns.

Revision ID: 0013
Revises: 0012
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = (
    ("purchase_order_line", "unit_price"),
    ("purchase_order_line", "tax_rate"),
    ("goods_receipt_line", "unit_cost"),
    ("vendor_invoice_line", "unit_price"),
)


def _retype(scale: int) -> None:
    if op.get_bind().dialect.name == "sqlite":
        return
    for table, column in COLUMNS:
        op.alter_column(table, column, type_=sa.Numeric(18, scale))


def upgrade() -> None:
    _retype(4)


def downgrade() -> None:
    _retype(2)
