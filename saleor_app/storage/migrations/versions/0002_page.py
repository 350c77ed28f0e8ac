"""settings page: per-channel key status, channel names, a resend's retry window

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 10:00:00
"""
from alembic import op
import sqlalchemy as sa
import saleor_app.storage.models


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('channel_names',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('installation_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('channel_slug', sa.String(length=255), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('updated_at', saleor_app.storage.models.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['installation_id'], ['installations.id'], name=op.f('fk_channel_names_installation_id_installations'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_channel_names')),
    sa.UniqueConstraint('installation_id', 'channel_slug', name='uq_channel_names_installation_channel')
    )
    with op.batch_alter_table('channel_settings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('key_status', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('key_status_message', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('key_status_at', saleor_app.storage.models.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('key_changed_at', saleor_app.storage.models.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('retry_window_started_at', saleor_app.storage.models.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_column('retry_window_started_at')

    with op.batch_alter_table('channel_settings', schema=None) as batch_op:
        batch_op.drop_column('key_changed_at')
        batch_op.drop_column('key_status_at')
        batch_op.drop_column('key_status_message')
        batch_op.drop_column('key_status')

    op.drop_table('channel_names')
