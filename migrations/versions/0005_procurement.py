"""procure-to-pay records: suppliers, POs, receipts, vendor invoices (procurement)

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

from domain.types import BigId, Money, UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _id() -> sa.Column:
    return sa.Column("id", BigId, primary_key=True, autoincrement=True)


def upgrade() -> None:
    op.create_table(
        "supplier",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("blocked", sa.Boolean(), nullable=False),
        sa.Column("bank_account_trusted", sa.Boolean(), nullable=False),
        sa.Column("bank_details_edited_by", sa.String(200), nullable=True),
        sa.Column("net_days", sa.Integer(), nullable=False),
        sa.Column("discount_pct", Money(), nullable=False),
        sa.Column("discount_days", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
    )
    op.create_table(
        "requisition",
        sa.Column("req_no", sa.String(64), primary_key=True),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("cost_center", sa.String(32), nullable=True),
        sa.Column("category", sa.String(40), nullable=False),
        sa.Column("supplier_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("amount", Money(), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("approval_chain", sa.JSON(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_requisition_instance_id", "requisition", ["instance_id"])
    op.create_table(
        "requisition_approval",
        _id(),
        sa.Column("req_no", sa.String(64), sa.ForeignKey("requisition.req_no"), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("approver_group", sa.String(64), nullable=False),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("decision", sa.String(10), nullable=False),
        sa.Column("comment", sa.String(400), nullable=False),
        sa.Column("decided_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_requisition_approval_req_no", "requisition_approval", ["req_no"])
    op.create_table(
        "purchase_order",
        sa.Column("po_no", sa.String(64), primary_key=True),
        sa.Column("req_no", sa.String(64), sa.ForeignKey("requisition.req_no"), nullable=False),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("supplier_id", sa.String(64), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("cost_center", sa.String(32), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("min_shelf_life_days", sa.Integer(), nullable=False),
        sa.Column("issued_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_purchase_order_instance_id", "purchase_order", ["instance_id"])
    op.create_table(
        "purchase_order_line",
        _id(),
        sa.Column("po_no", sa.String(64), sa.ForeignKey("purchase_order.po_no"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("sku", sa.String(64), nullable=True),
        sa.Column("gtin", sa.String(14), nullable=True),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("unit_price", Money(), nullable=False),
        sa.Column("tax_rate", Money(), nullable=False),
        sa.UniqueConstraint("po_no", "line_no", name="uq_po_line"),
    )
    op.create_table(
        "goods_receipt_line",
        _id(),
        sa.Column("po_no", sa.String(64), sa.ForeignKey("purchase_order.po_no"), nullable=False),
        sa.Column("receipt_no", sa.String(64), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("gtin", sa.String(14), nullable=False),
        sa.Column("lot", sa.String(64), nullable=False),
        sa.Column("expiry_date", sa.Date(), nullable=False),
        sa.Column("udi", sa.String(200), nullable=True),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("unit_cost", Money(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
        sa.Column("inspected_by", sa.String(200), nullable=True),
        sa.UniqueConstraint("po_no", "receipt_no", "line_no", "lot", name="uq_receipt_lot"),
    )
    op.create_index("ix_receipt_po", "goods_receipt_line", ["po_no", "line_no"])
    op.create_table(
        "vendor_invoice",
        _id(),
        sa.Column("po_no", sa.String(64), sa.ForeignKey("purchase_order.po_no"), nullable=False),
        sa.Column("supplier_id", sa.String(64), nullable=False),
        sa.Column("invoice_no", sa.String(64), nullable=False),
        sa.Column("normalised_no", sa.String(64), nullable=False),
        sa.Column("invoice_date", sa.Date(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("net_total", Money(), nullable=False),
        sa.Column("tax_amount", Money(), nullable=False),
        sa.Column("gross_total", Money(), nullable=False),
        sa.Column("entered_by", sa.String(200), nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("journal_entry_id", BigId, nullable=True),
        sa.Column("instance_id", sa.String(32), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
    )
    op.create_index("ix_vendor_invoice_number", "vendor_invoice", ["supplier_id", "normalised_no"])
    op.create_index("ix_vendor_invoice_instance_id", "vendor_invoice", ["instance_id"])
    op.create_table(
        "vendor_invoice_line",
        _id(),
        sa.Column("invoice_id", BigId, sa.ForeignKey("vendor_invoice.id"), nullable=False),
        sa.Column("line_no", sa.Integer(), nullable=False),
        sa.Column("qty", sa.Integer(), nullable=False),
        sa.Column("unit_price", Money(), nullable=False),
    )
    op.create_index("ix_vendor_invoice_line_invoice_id", "vendor_invoice_line", ["invoice_id"])
    op.create_table(
        "payment_block",
        _id(),
        sa.Column("invoice_id", BigId, sa.ForeignKey("vendor_invoice.id"), nullable=False),
        sa.Column("reason", sa.String(400), nullable=False),
        sa.Column("set_at", UTCDateTime(), nullable=False),
        sa.Column("released_at", UTCDateTime(), nullable=True),
        sa.Column("released_by", sa.String(200), nullable=True),
        sa.Column("release_reason", sa.String(400), nullable=True),
    )
    op.create_index("ix_payment_block_invoice_id", "payment_block", ["invoice_id"])


def downgrade() -> None:
    for table in (
        "payment_block",
        "vendor_invoice_line",
        "vendor_invoice",
        "goods_receipt_line",
        "purchase_order_line",
        "purchase_order",
        "requisition_approval",
        "requisition",
        "supplier",
    ):
        op.drop_table(table)
