"""trust under faults: Saleor's install time for reconciliation, the readiness write probe

Revision ID: 0004
Revises: 0003
"""
from alembic import op
import sqlalchemy as sa
import saleor_app.storage.models


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.add_column(sa.Column('saleor_installed_at', saleor_app.storage.models.UTCDateTime(timezone=True), nullable=True))
    op.create_table('write_probes',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('written_at', saleor_app.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_write_probes'))
    )


def downgrade() -> None:
    op.drop_table('write_probes')
    with op.batch_alter_table('installations', schema=None) as batch_op:
        batch_op.drop_column('saleor_installed_at')
