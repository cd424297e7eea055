"""guardian notices through an outbox: one pending delivery per care alert and guardian

Revision ID: 0014
Revises: 0013
"""

import sqlalchemy as sa
from alembic import op

revision = '0014'
down_revision = '0013'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'care_deliveries',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('alert_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('guardian_id', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('attempts', sa.Integer(), nullable=False),
        sa.Column('response_status', sa.Integer(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('next_attempt_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['alert_id'], ['care_alerts.id'],
                                name=op.f('fk_care_deliveries_alert_id_care_alerts'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['guardian_id'], ['care_guardians.id'],
                                name=op.f('fk_care_deliveries_guardian_id_care_guardians'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_care_deliveries')),
        sa.UniqueConstraint('alert_id', 'guardian_id', name='uq_care_deliveries_alert_guardian'),
    )
    with op.batch_alter_table('care_deliveries', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_deliveries_alert_id'), ['alert_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_care_deliveries_guardian_id'), ['guardian_id'], unique=False)
        batch_op.create_index('ix_care_deliveries_due', ['status', 'next_attempt_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('care_deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_care_deliveries_due')
        batch_op.drop_index(batch_op.f('ix_care_deliveries_guardian_id'))
        batch_op.drop_index(batch_op.f('ix_care_deliveries_alert_id'))
    op.drop_table('care_deliveries')
