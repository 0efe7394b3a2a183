"""indexes for lookups that scanned every row ever written

Found by running EXPLAIN QUERY PLAN over every statement the integration suite issues: each of
these read a whole table (or every open task) per call, so it slowed as history grew. SQLite
without ANALYZE statistics also picked the status index for "this instance's open tasks",
walking every open task in every inbox; a two-column index wins on its own.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

# (index, table, columns, the single-column index it replaces: (name, column) or None)
INDEXES = [
    (
        "ix_task_instance_status",
        "human_task",
        ["instance_id", "status"],
        ("ix_task_instance", "instance_id"),
    ),
    # With the inbox's order, or the planner walks every open task by creation time instead.
    (
        "ix_task_business_status",
        "human_task",
        ["business_key", "status", "created_at", "id"],
        ("ix_task_business_key", "business_key"),
    ),
    ("ix_invoice_customer_unposted", "invoice", ["customer_id", "currency", "posted"], None),
    ("ix_shipment_unit_order", "shipment_unit", ["order_no", "line_no"], None),
    ("ix_receivable_order", "receivable", ["order_no"], None),
    ("ix_receivable_dunning", "receivable", ["status", "due_date"], None),
    ("ix_vendor_invoice_po", "vendor_invoice", ["po_no"], None),
    ("ix_outbox_instance", "outbox", ["instance_id", "id"], None),
]


def upgrade() -> None:
    for name, table, columns, replaces in INDEXES:
        op.create_index(name, table, columns)
        if replaces:
            op.drop_index(replaces[0], table_name=table)


def downgrade() -> None:
    for name, table, _columns, replaces in reversed(INDEXES):
        if replaces:
            op.create_index(replaces[0], table, [replaces[1]])
        op.drop_index(name, table_name=table)
