"""message buffer: an expired message is kept and announced, never silently deleted

Revision ID: 0007
Revises: 0006
"""

import sqlalchemy as sa
from alembic import op

from domain.types import UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("message_buffer") as batch:
        batch.add_column(sa.Column("expired_at", UTCDateTime(), nullable=True))
        # Expired rows stay, so the sweep must find the live ones without reading them.
        batch.drop_index("ix_buffer_expires")
        batch.create_index("ix_buffer_live_expiry", ["expired_at", "expires_at"])


def downgrade() -> None:
    with op.batch_alter_table("message_buffer") as batch:
        batch.drop_index("ix_buffer_live_expiry")
        batch.create_index("ix_buffer_expires", ["expires_at"])
        batch.drop_column("expired_at")
