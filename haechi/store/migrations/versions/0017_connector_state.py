"""live public feeds: each connector's newest observation per station (gap backfill) and its last run

Revision ID: 0017
Revises: 0016
"""

import sqlalchemy as sa
from alembic import op

revision = '0017'
down_revision = '0016'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'connector_stations',
        sa.Column('connector', sa.String(length=32), nullable=False),
        sa.Column('station', sa.String(length=64), nullable=False),
        sa.Column('last_time', sa.DateTime(timezone=True), nullable=False),
        sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('connector', 'station', name=op.f('pk_connector_stations')),
    )
    op.create_table(
        'connector_status',
        sa.Column('connector', sa.String(length=32), nullable=False),
        sa.Column('run_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('detail', sa.Text(), nullable=True),
        sa.Column('requests', sa.Integer(), nullable=False),
        sa.Column('stored', sa.BigInteger(), nullable=False),
        sa.Column('duplicates', sa.BigInteger(), nullable=False),
        sa.Column('rejected', sa.BigInteger(), nullable=False),
        sa.Column('ok_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('connector', name=op.f('pk_connector_status')),
    )


def downgrade() -> None:
    op.drop_table('connector_status')
    op.drop_table('connector_stations')
