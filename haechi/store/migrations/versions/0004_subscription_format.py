"""webhook subscriptions choose JSON or CAP XML

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 21:33:31.294645
"""

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.add_column(sa.Column('format', sa.String(length=8), server_default='json', nullable=False))



def downgrade() -> None:
    with op.batch_alter_table('subscriptions', schema=None) as batch_op:
        batch_op.drop_column('format')

