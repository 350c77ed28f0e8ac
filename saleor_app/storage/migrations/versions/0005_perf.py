"""delivery performance: the queue index, read in claim order (a claim's cost no longer grows with what is due)

Revision ID: 0005_perf
Revises: 0004
"""
from alembic import op
import sqlalchemy as sa


revision = "0005_perf"
down_revision = "0004"
branch_labels = None
depends_on = None

QUEUED_CONDITION = "status IN ('pending', 'retrying')"  # as saleor_app.storage.models.QUEUED_CONDITION


def upgrade() -> None:
    op.create_index(
        "ix_deliveries_queue", "deliveries", ["next_attempt_at"], unique=False,
        sqlite_where=sa.text(QUEUED_CONDITION), postgresql_where=sa.text(QUEUED_CONDITION),
    )


def downgrade() -> None:
    op.drop_index("ix_deliveries_queue", table_name="deliveries")
