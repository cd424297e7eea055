"""roads closures and shelter loads (issue 9)

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('road_closures',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('effect', sa.String(length=16), nullable=False),
    sa.Column('speed_factor', sa.Float(), nullable=True),
    sa.Column('geometry', sa.JSON(), nullable=False),
    sa.Column('created_by', sa.String(length=100), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lifted_at', sa.DateTime(timezone=True), nullable=True),
    sa.CheckConstraint("effect IN ('closed', 'slowed')", name=op.f('ck_road_closures_effect')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_road_closures'))
    )
    op.create_table('shelter_loads',
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('evacuees', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'],
        name=op.f('fk_shelter_loads_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('place_id', name=op.f('pk_shelter_loads'))
    )


def downgrade() -> None:
    op.drop_table('shelter_loads')
    op.drop_table('road_closures')
