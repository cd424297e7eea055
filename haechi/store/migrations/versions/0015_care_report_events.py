"""care reports handed to the engine over the bus: the events already stored, each stored once

Revision ID: 0015
Revises: 0014
"""

import sqlalchemy as sa
from alembic import op

revision = '0015'
down_revision = '0014'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'care_report_events',
        sa.Column('id', sa.String(length=64), nullable=False),
        sa.Column('handled_at', sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_care_report_events')),
    )
    with op.batch_alter_table('care_report_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_report_events_handled_at'), ['handled_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('care_report_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_report_events_handled_at'))
    op.drop_table('care_report_events')
