"""response: incidents shared by the three centers, their audit trail, CCTV analytics events, drones,
119 dispatches; current position and status time of fire units

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('incidents',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('severity', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('center', sa.String(length=32), nullable=False),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('source_ref', sa.String(length=100), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.Column('opened_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_by', sa.String(length=100), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incidents'))
    )
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incidents_area_code'), ['area_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_center'), ['center'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_opened_at'), ['opened_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_incidents_status'), ['status'], unique=False)

    op.create_table('incident_events',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('from_value', sa.String(length=100), nullable=True),
    sa.Column('to_value', sa.String(length=100), nullable=True),
    sa.Column('note', sa.Text(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
        name=op.f('fk_incident_events_incident_id_incidents'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_incident_events'))
    )
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_incident_events_incident_id'), ['incident_id'], unique=False)

    op.create_table('cctv_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.String(length=100), nullable=False),
    sa.Column('camera_place_id', sa.Integer(), nullable=False),
    sa.Column('event_type', sa.String(length=32), nullable=False),
    sa.Column('observed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=True),
    sa.Column('density', sa.Float(), nullable=True),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['camera_place_id'], ['places.id'],
        name=op.f('fk_cctv_events_camera_place_id_places'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
        name=op.f('fk_cctv_events_incident_id_incidents'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_cctv_events')),
    sa.UniqueConstraint('event_id', name=op.f('uq_cctv_events_event_id'))
    )
    with op.batch_alter_table('cctv_events', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_cctv_events_camera_place_id'), ['camera_place_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cctv_events_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_cctv_events_observed_at'), ['observed_at'], unique=False)

    op.create_table('dispatches',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=False),
    sa.Column('unit_id', sa.Integer(), nullable=False),
    sa.Column('dispatched_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('estimate_s', sa.Float(), nullable=True),
    sa.Column('estimate_method', sa.String(length=32), nullable=True),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('response_s', sa.Float(), nullable=True),
    sa.Column('golden_time_s', sa.Float(), nullable=True),
    sa.Column('met_golden_time', sa.Boolean(), nullable=True),
    sa.Column('cleared_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('dispatched_by', sa.String(length=100), nullable=False),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
        name=op.f('fk_dispatches_incident_id_incidents'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['unit_id'], ['fire_units.id'],
        name=op.f('fk_dispatches_unit_id_fire_units'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dispatches'))
    )
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dispatches_dispatched_at'), ['dispatched_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_dispatches_incident_id'), ['incident_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_dispatches_unit_id'), ['unit_id'], unique=False)

    op.create_table('drones',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('call_sign', sa.String(length=64), nullable=False),
    sa.Column('model', sa.String(length=100), nullable=True),
    sa.Column('base_place_id', sa.Integer(), nullable=True),
    sa.Column('base_lon', sa.Float(), nullable=False),
    sa.Column('base_lat', sa.Float(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=True),
    sa.Column('datastreams', sa.JSON(), nullable=False),
    sa.Column('incident_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['base_place_id'], ['places.id'],
        name=op.f('fk_drones_base_place_id_places'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['incident_id'], ['incidents.id'],
        name=op.f('fk_drones_incident_id_incidents'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['thing_id'], ['things.id'], name=op.f('fk_drones_thing_id_things'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_drones')),
    sa.UniqueConstraint('call_sign', name=op.f('uq_drones_call_sign'))
    )
    with op.batch_alter_table('drones', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_drones_incident_id'), ['incident_id'], unique=False)

    with op.batch_alter_table('fire_units', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lon', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('lat', sa.Float(), nullable=True))
        batch_op.add_column(sa.Column('status_changed_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('fire_units', schema=None) as batch_op:
        batch_op.drop_column('status_changed_at')
        batch_op.drop_column('lat')
        batch_op.drop_column('lon')

    with op.batch_alter_table('drones', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_drones_incident_id'))

    op.drop_table('drones')
    with op.batch_alter_table('dispatches', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dispatches_unit_id'))
        batch_op.drop_index(batch_op.f('ix_dispatches_incident_id'))
        batch_op.drop_index(batch_op.f('ix_dispatches_dispatched_at'))

    op.drop_table('dispatches')
    with op.batch_alter_table('cctv_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_cctv_events_observed_at'))
        batch_op.drop_index(batch_op.f('ix_cctv_events_incident_id'))
        batch_op.drop_index(batch_op.f('ix_cctv_events_camera_place_id'))

    op.drop_table('cctv_events')
    with op.batch_alter_table('incident_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incident_events_incident_id'))

    op.drop_table('incident_events')
    with op.batch_alter_table('incidents', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_incidents_status'))
        batch_op.drop_index(batch_op.f('ix_incidents_opened_at'))
        batch_op.drop_index(batch_op.f('ix_incidents_kind'))
        batch_op.drop_index(batch_op.f('ix_incidents_center'))
        batch_op.drop_index(batch_op.f('ix_incidents_area_code'))

    op.drop_table('incidents')
