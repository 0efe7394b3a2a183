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


def _customers_and_orders() -> None:
    op.create_table(
        "customer",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("credit_limit", Money(), nullable=False),
        sa.Column("payment_terms_days", sa.Integer(), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("license_expires_on", sa.Date(), nullable=True),
        sa.Column("min_shelf_life_days", sa.Integer(), nullable=True),
        sa.Column("next_review_on", sa.Date(), nullable=True),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("grade", sa.String(1), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "sales_order",
        sa.Column("order_no", sa.String(64), primary_key=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("instance_id", sa.String(36), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("order_date", sa.Date(), nullable=False),
        sa.Column("requested_ship_date", sa.Date(), nullable=False),
        sa.Column("lines", sa.JSON(), nullable=False),
        sa.Column("net", Money(), nullable=False),
        sa.Column("tax", Money(), nullable=False),
        sa.Column("gross", Money(), nullable=False),
        sa.Column("released_value", Money(), nullable=True),
        sa.Column("released_on", sa.Date(), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_sales_order_instance_id", "sales_order", ["instance_id"])
    op.create_index("ix_sales_order_customer_status", "sales_order", ["customer_id", "status"])
    op.create_table(
        "hold_release",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=True),
        sa.Column("decision_id", sa.Integer(), nullable=True),
        sa.Column("rule_ids", sa.JSON(), nullable=False),
        sa.Column("ruleset_version", sa.Integer(), nullable=True),
        sa.Column("approved", sa.Boolean(), nullable=False),
        sa.Column("reason", sa.String(1000), nullable=False),
        sa.Column("released_by", sa.String(120), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_hold_release_order_no", "hold_release", ["order_no"])


def _shipments_and_invoices() -> None:
    op.create_table(
        "shipment",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("ship_date", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_shipment_order_no", "shipment", ["order_no"])
    op.create_table(
        "shipment_unit",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("shipment_id", BigId, sa.ForeignKey("shipment.id"), nullable=False),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("gtin", sa.String(14), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("udi", sa.String(200), nullable=True),
        sa.Column("serial", sa.String(64), nullable=True),
        sa.Column("expiry", sa.Date(), nullable=True),
        sa.Column("invoice_no", sa.String(64), nullable=True),
    )
    op.create_index("ix_shipment_unit_shipment_id", "shipment_unit", ["shipment_id"])
    op.create_index("ix_shipment_unit_lot", "shipment_unit", ["gtin", "lot"])
    op.create_table(
        "invoice",
        sa.Column("invoice_no", sa.String(64), primary_key=True),
        sa.Column("order_no", sa.String(64), nullable=False),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("net", Money(), nullable=False),
        sa.Column("tax", Money(), nullable=False),
        sa.Column("gross", Money(), nullable=False),
        sa.Column("posted", sa.Boolean(), nullable=False),
        sa.Column("journal_entry_id", sa.Integer(), nullable=True),
    )
    op.create_index("ix_invoice_order_no", "invoice", ["order_no"])
    op.create_table(
        "receivable",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("document_no", sa.String(64), nullable=False, unique=True),
        sa.Column("customer_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("open_amount", Money(), nullable=False),
        sa.Column("doc_date", sa.Date(), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("order_no", sa.String(64), nullable=True),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("dunning_level", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_receivable_customer_open", "receivable", ["customer_id", "status"])
    op.create_table(
        "payment",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("receivable_id", BigId, sa.ForeignKey("receivable.id"), nullable=False),
        sa.Column("reference", sa.String(120), nullable=False, unique=True),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("paid_on", sa.Date(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_payment_receivable_id", "payment", ["receivable_id"])


def upgrade() -> None:
    _journal()
    _lots()
    _customers_and_orders()
    _shipments_and_invoices()
    # Order-to-cash records (customers, receivables, lots, orders, shipments, invoices) follow.


def downgrade() -> None:
    for table in (
        "payment",
        "receivable",
        "invoice",
        "shipment_unit",
        "shipment",
        "hold_release",
        "sales_order",
        "customer",
    ):
        op.drop_table(table)
    op.drop_table("lot_status_change")
    op.drop_table("lot")
    op.drop_table("journal_line")
    op.drop_table("journal_entry")
