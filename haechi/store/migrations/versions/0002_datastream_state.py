"""sensing live state per datastream

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 20:25:04.996821
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('datastream_state',
    sa.Column('datastream_id', sa.Integer(), nullable=False),
    sa.Column('phenomenon_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('result', sa.Float(), nullable=True),
    sa.Column('result_quality', sa.String(length=8), nullable=False),
    sa.Column('qc_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('qc_value', sa.Float(), nullable=True),
    sa.Column('flat_count', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['datastream_id'], ['datastreams.id'],
        name=op.f('fk_datastream_state_datastream_id_datastreams'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('datastream_id', name=op.f('pk_datastream_state'))
    )


def downgrade() -> None:
    op.drop_table('datastream_state')
