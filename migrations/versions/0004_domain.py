"""order_to_cash_records_and_journal (domain)

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

from domain.types import BigId, Money, UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _journal() -> None:
    op.create_table(
        "journal_entry",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("source_key", sa.String(200), nullable=False, unique=True),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("posted_at", UTCDateTime(), nullable=False),
        sa.Column("description", sa.String(400), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=True),
        sa.Column("reverses_id", BigId, sa.ForeignKey("journal_entry.id"), nullable=True),
        sa.Column("reversed_by_id", BigId, nullable=True),
    )
    op.create_index("ix_journal_entry_posted_at", "journal_entry", ["posted_at"])
    op.create_index("ix_journal_entry_instance_id", "journal_entry", ["instance_id"])
    op.create_table(
        "journal_line",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("entry_id", BigId, sa.ForeignKey("journal_entry.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("account", sa.String(20), nullable=False),
        sa.Column("debit", Money(), nullable=False),
        sa.Column("credit", Money(), nullable=False),
        *[
            sa.Column(name, sa.String(size), nullable=True)
            for name, size in (
                ("customer_id", 64),
                ("supplier_id", 64),
                ("order_no", 64),
                ("po_no", 64),
                ("invoice_no", 64),
                ("lot", 64),
                ("gtin", 14),
                ("udi", 200),
                ("cost_centre", 32),
            )
        ],
    )
    op.create_index("ix_journal_line_entry_id", "journal_line", ["entry_id"])
    op.create_index("ix_journal_line_lot", "journal_line", ["gtin", "lot"])
    op.create_index("ix_journal_line_order", "journal_line", ["order_no"])


def _lots() -> None:
    op.create_table(
        "lot",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("gtin", sa.String(14), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("expiry_date", sa.Date(), nullable=False),
        sa.Column("production_date", sa.Date(), nullable=True),
        sa.Column("unit_cost", Money(), nullable=False),
        sa.Column("qty_on_hand", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.UniqueConstraint("gtin", "lot", name="uq_lot_gtin_lot"),
    )
    op.create_index("ix_lot_gtin_expiry", "lot", ["gtin", "expiry_date"])
    op.create_table(
        "lot_status_change",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("lot_id", BigId, sa.ForeignKey("lot.id"), nullable=False),
        sa.Column("old_status", sa.String(16), nullable=True),
        sa.Column("new_status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("actor", sa.String(120), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_lot_status_change_lot_id", "lot_status_change", ["lot_id"])


def upgrade() -> None:
    _journal()
    _lots()
    # Order-to-cash records (customers, receivables, lots, orders, shipments, invoices) follow.


def downgrade() -> None:
    op.drop_table("lot_status_change")
    op.drop_table("lot")
    op.drop_table("journal_line")
    op.drop_table("journal_entry")
