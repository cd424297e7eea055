"""a warning that cannot be placed is kept: why it has no area (no location, outside every district)

Revision ID: 0016
Revises: 0015
"""

import sqlalchemy as sa
from alembic import op

revision = '0016'
down_revision = '0015'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('warnings', schema=None) as batch_op:
        batch_op.add_column(sa.Column('unplaced', sa.String(length=32), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('warnings', schema=None) as batch_op:
        batch_op.drop_column('unplaced')
