"""care for the vulnerable: guardians, wards, consent, devices, positions, zones, alerts, trips

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('care_wards',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('alias', sa.String(length=100), nullable=False),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("kind IN ('child', 'dementia', 'elderly_alone', 'walker')", name=op.f('ck_care_wards_kind')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_wards'))
    )
    op.create_table('care_access_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_access_log_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_access_log'))
    )
    with op.batch_alter_table('care_access_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_access_log_ward_id'), ['ward_id'], unique=False)

    op.create_table('care_alerts',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('escalate_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('delivery', sa.String(length=16), nullable=True),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_alerts_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_alerts'))
    )
    with op.batch_alter_table('care_alerts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_alerts_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_care_alerts_ward_id'), ['ward_id'], unique=False)

    op.create_table('care_consents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('consented_by', sa.String(length=100), nullable=False),
    sa.Column('relation', sa.String(length=32), nullable=False),
    sa.Column('purpose', sa.String(length=300), nullable=False),
    sa.Column('granted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('valid_until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('withdrawn_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('recorded_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_consents_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_consents'))
    )
    with op.batch_alter_table('care_consents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_consents_ward_id'), ['ward_id'], unique=False)

    op.create_table('care_devices',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.CheckConstraint("kind IN ('tracker', 'door', 'motion', 'power')", name=op.f('ck_care_devices_kind')),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_devices_ward_id_care_wards'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'],
        name=op.f('fk_care_devices_token_id_api_tokens'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_devices')),
    sa.UniqueConstraint('ref', name=op.f('uq_care_devices_ref'))
    )
    with op.batch_alter_table('care_devices', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_devices_ward_id'), ['ward_id'], unique=False)

    op.create_table('care_incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_incidents_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_incidents'))
    )
    with op.batch_alter_table('care_incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_incidents_ward_id'), ['ward_id'], unique=False)

    op.create_table('care_trips',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('route', sa.JSON(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expected_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('contacts', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_trips_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_trips'))
    )
    with op.batch_alter_table('care_trips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_trips_ward_id'), ['ward_id'], unique=False)

    op.create_table('care_zones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('geometry', sa.JSON(), nullable=False),
    sa.Column('schedule', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_zones_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_zones'))
    )
    with op.batch_alter_table('care_zones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_zones_ward_id'), ['ward_id'], unique=False)

    op.create_table('care_activity',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['device_id'], ['care_devices.id'],
        name=op.f('fk_care_activity_device_id_care_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_activity_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_activity'))
    )
    with op.batch_alter_table('care_activity', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_activity_at'), ['at'], unique=False)
        batch_op.create_index('ix_care_activity_ward_at', ['ward_id', 'at'], unique=False)

    op.create_table('care_guardians',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('webhook_url', sa.String(length=500), nullable=True),
    sa.Column('language', sa.String(length=2), nullable=False),
    sa.Column('needs', sa.JSON(), nullable=True),
    sa.Column('hazards', sa.JSON(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'],
        name=op.f('fk_care_guardians_token_id_api_tokens'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_guardians')),
    sa.UniqueConstraint('token_id', name=op.f('uq_care_guardians_token_id'))
    )
    op.create_table('care_positions',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('device_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lon', sa.Float(), nullable=False),
    sa.Column('lat', sa.Float(), nullable=False),
    sa.Column('accuracy_m', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['device_id'], ['care_devices.id'],
        name=op.f('fk_care_positions_device_id_care_devices'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_positions_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_positions'))
    )
    with op.batch_alter_table('care_positions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_care_positions_at'), ['at'], unique=False)
        batch_op.create_index('ix_care_positions_ward_at', ['ward_id', 'at'], unique=False)

    op.create_table('care_ward_guardians',
    sa.Column('ward_id', sa.Integer(), nullable=False),
    sa.Column('guardian_id', sa.Integer(), nullable=False),
    sa.Column('relation', sa.String(length=32), nullable=True),
    sa.ForeignKeyConstraint(['guardian_id'], ['care_guardians.id'],
        name=op.f('fk_care_ward_guardians_guardian_id_care_guardians'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['ward_id'], ['care_wards.id'],
        name=op.f('fk_care_ward_guardians_ward_id_care_wards'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('ward_id', 'guardian_id', name=op.f('pk_care_ward_guardians'))
    )


def downgrade() -> None:
    op.drop_table('care_ward_guardians')
    with op.batch_alter_table('care_positions', schema=None) as batch_op:
        batch_op.drop_index('ix_care_positions_ward_at')
        batch_op.drop_index(batch_op.f('ix_care_positions_at'))

    op.drop_table('care_positions')
    op.drop_table('care_guardians')
    with op.batch_alter_table('care_activity', schema=None) as batch_op:
        batch_op.drop_index('ix_care_activity_ward_at')
        batch_op.drop_index(batch_op.f('ix_care_activity_at'))

    op.drop_table('care_activity')
    with op.batch_alter_table('care_zones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_zones_ward_id'))

    op.drop_table('care_zones')
    with op.batch_alter_table('care_trips', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_trips_ward_id'))

    op.drop_table('care_trips')
    with op.batch_alter_table('care_incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_incidents_ward_id'))

    op.drop_table('care_incidents')
    with op.batch_alter_table('care_devices', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_devices_ward_id'))

    op.drop_table('care_devices')
    with op.batch_alter_table('care_consents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_consents_ward_id'))

    op.drop_table('care_consents')
    with op.batch_alter_table('care_alerts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_alerts_ward_id'))
        batch_op.drop_index(batch_op.f('ix_care_alerts_at'))

    op.drop_table('care_alerts')
    with op.batch_alter_table('care_access_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_care_access_log_ward_id'))

    op.drop_table('care_access_log')
    op.drop_table('care_wards')
