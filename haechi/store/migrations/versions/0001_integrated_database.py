"""integrated database: sensing, urban components, disasters, projects, operations

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 20:23:04.573021
"""

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('admin_areas',
    sa.Column('code', sa.String(length=10), nullable=False),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('parent_code', sa.String(length=10), nullable=True),
    sa.Column('name_ko', sa.String(length=100), nullable=False),
    sa.Column('name_en', sa.String(length=100), nullable=True),
    sa.Column('area_km2', sa.Float(), nullable=True),
    sa.Column('geometry', sa.JSON(), nullable=True),
    sa.Column('min_lon', sa.Float(), nullable=True),
    sa.Column('min_lat', sa.Float(), nullable=True),
    sa.Column('max_lon', sa.Float(), nullable=True),
    sa.Column('max_lat', sa.Float(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.CheckConstraint("level IN ('city', 'district', 'dong')", name=op.f('ck_admin_areas_level')),
    sa.ForeignKeyConstraint(['parent_code'], ['admin_areas.code'], name=op.f('fk_admin_areas_parent_code_admin_areas')),
    sa.PrimaryKeyConstraint('code', name=op.f('pk_admin_areas'))
    )
    with op.batch_alter_table('admin_areas', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_admin_areas_level'), ['level'], unique=False)
        batch_op.create_index(batch_op.f('ix_admin_areas_parent_code'), ['parent_code'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor', sa.String(length=100), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=True),
    sa.Column('action', sa.String(length=100), nullable=False),
    sa.Column('target', sa.String(length=200), nullable=True),
    sa.Column('status', sa.Integer(), nullable=True),
    sa.Column('detail', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_log'))
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('dead_letters',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('source', sa.String(length=100), nullable=False),
    sa.Column('reason', sa.Text(), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('replayed_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_dead_letters'))
    )
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_dead_letters_received_at'), ['received_at'], unique=False)

    op.create_table('features_of_interest',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('encoding_type', sa.String(length=64), nullable=False),
    sa.Column('feature', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_features_of_interest'))
    )
    op.create_table('locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('encoding_type', sa.String(length=64), nullable=False),
    sa.Column('location', sa.JSON(), nullable=False),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_locations'))
    )
    op.create_table('observed_properties',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sa.String(length=64), nullable=True),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('definition', sa.String(length=500), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observed_properties')),
    sa.UniqueConstraint('code', name=op.f('uq_observed_properties_code'))
    )
    op.create_table('sensors',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('encoding_type', sa.String(length=64), nullable=False),
    sa.Column('metadata', sa.Text(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sensors'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('role', sa.String(length=32), nullable=False),
    sa.Column('center', sa.String(length=32), nullable=True),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'], name=op.f('fk_api_tokens_area_code_admin_areas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    op.create_table('area_statistics',
    sa.Column('area_code', sa.String(length=10), nullable=False),
    sa.Column('indicator', sa.String(length=48), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('value', sa.Float(), nullable=False),
    sa.Column('source', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'],
        name=op.f('fk_area_statistics_area_code_admin_areas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('area_code', 'indicator', 'year', name=op.f('pk_area_statistics'))
    )
    op.create_table('disasters',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('category', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('deaths', sa.Integer(), nullable=False),
    sa.Column('injuries', sa.Integer(), nullable=False),
    sa.Column('missing', sa.Integer(), nullable=False),
    sa.Column('evacuated', sa.Integer(), nullable=False),
    sa.Column('damage_krw', sa.BigInteger(), nullable=True),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.CheckConstraint("category IN ('natural', 'social')", name=op.f('ck_disasters_category')),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'], name=op.f('fk_disasters_area_code_admin_areas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_disasters'))
    )
    with op.batch_alter_table('disasters', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_disasters_area_code'), ['area_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_disasters_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_disasters_started_at'), ['started_at'], unique=False)

    op.create_table('land_use',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('area_code', sa.String(length=10), nullable=False),
    sa.Column('use_class', sa.String(length=64), nullable=False),
    sa.Column('area_km2', sa.Float(), nullable=False),
    sa.Column('geometry', sa.JSON(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'],
        name=op.f('fk_land_use_area_code_admin_areas'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_land_use')),
    sa.UniqueConstraint('area_code', 'use_class', name='uq_land_use_area_class')
    )
    with op.batch_alter_table('land_use', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_land_use_area_code'), ['area_code'], unique=False)

    op.create_table('places',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('ref', sa.String(length=64), nullable=False),
    sa.Column('name_ko', sa.String(length=200), nullable=False),
    sa.Column('name_en', sa.String(length=200), nullable=True),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('address', sa.String(length=300), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('attrs', sa.JSON(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'], name=op.f('fk_places_area_code_admin_areas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_places')),
    sa.UniqueConstraint('kind', 'ref', name='uq_places_kind_ref')
    )
    with op.batch_alter_table('places', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_places_area_code'), ['area_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_places_kind'), ['kind'], unique=False)
        batch_op.create_index('ix_places_lon_lat', ['lon', 'lat'], unique=False)

    op.create_table('projects',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('phase', sa.String(length=16), nullable=False),
    sa.Column('title', sa.String(length=300), nullable=False),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('budget_krw', sa.BigInteger(), nullable=True),
    sa.Column('start_date', sa.Date(), nullable=True),
    sa.Column('end_date', sa.Date(), nullable=True),
    sa.Column('evaluation_score', sa.Float(), nullable=True),
    sa.Column('evaluation', sa.Text(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.CheckConstraint("phase IN ('prevention', 'preparation', 'response', 'recovery')",
        name=op.f('ck_projects_phase')),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'], name=op.f('fk_projects_area_code_admin_areas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_projects'))
    )
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_projects_area_code'), ['area_code'], unique=False)

    op.create_table('survey_results',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('survey', sa.String(length=200), nullable=False),
    sa.Column('year', sa.Integer(), nullable=False),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('question', sa.String(length=500), nullable=False),
    sa.Column('answer', sa.String(length=200), nullable=False),
    sa.Column('share_pct', sa.Float(), nullable=True),
    sa.Column('respondents', sa.Integer(), nullable=True),
    sa.Column('source', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'], name=op.f('fk_survey_results_area_code_admin_areas')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_survey_results'))
    )
    op.create_table('cctv_cameras',
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('purpose', sa.String(length=64), nullable=True),
    sa.Column('direction_deg', sa.Float(), nullable=True),
    sa.Column('fov_deg', sa.Float(), nullable=True),
    sa.Column('range_m', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'],
        name=op.f('fk_cctv_cameras_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('place_id', name=op.f('pk_cctv_cameras'))
    )
    op.create_table('citizen_reports',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('reported_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('lon', sa.Float(), nullable=True),
    sa.Column('lat', sa.Float(), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('reporter_token_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'], name=op.f('fk_citizen_reports_area_code_admin_areas')),
    sa.ForeignKeyConstraint(['reporter_token_id'], ['api_tokens.id'],
        name=op.f('fk_citizen_reports_reporter_token_id_api_tokens'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_citizen_reports'))
    )
    with op.batch_alter_table('citizen_reports', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_citizen_reports_area_code'), ['area_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_citizen_reports_reported_at'), ['reported_at'], unique=False)

    op.create_table('facilities',
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('facility_type', sa.String(length=32), nullable=False),
    sa.Column('structure_type', sa.String(length=64), nullable=True),
    sa.Column('completion_year', sa.Integer(), nullable=True),
    sa.Column('safety_grade', sa.String(length=1), nullable=True),
    sa.Column('floors', sa.Integer(), nullable=True),
    sa.Column('length_m', sa.Float(), nullable=True),
    sa.CheckConstraint("safety_grade IS NULL OR safety_grade IN ('A','B','C','D','E')",
        name=op.f('ck_facilities_grade')),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'],
        name=op.f('fk_facilities_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('place_id', name=op.f('pk_facilities'))
    )
    op.create_table('fire_units',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('station_place_id', sa.Integer(), nullable=False),
    sa.Column('call_sign', sa.String(length=64), nullable=False),
    sa.Column('unit_type', sa.String(length=32), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.ForeignKeyConstraint(['station_place_id'], ['places.id'],
        name=op.f('fk_fire_units_station_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_fire_units')),
    sa.UniqueConstraint('call_sign', name=op.f('uq_fire_units_call_sign'))
    )
    with op.batch_alter_table('fire_units', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_fire_units_station_place_id'), ['station_place_id'], unique=False)

    op.create_table('gauges',
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('river', sa.String(length=100), nullable=True),
    sa.Column('attention_stage_m', sa.Float(), nullable=True),
    sa.Column('advisory_stage_m', sa.Float(), nullable=True),
    sa.Column('warning_stage_m', sa.Float(), nullable=True),
    sa.Column('datum_elevation_m', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'], name=op.f('fk_gauges_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('place_id', name=op.f('pk_gauges'))
    )
    op.create_table('hospitals',
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('emergency_level', sa.String(length=32), nullable=True),
    sa.Column('er_beds', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'], name=op.f('fk_hospitals_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('place_id', name=op.f('pk_hospitals'))
    )
    op.create_table('school_zones',
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('school_name', sa.String(length=200), nullable=True),
    sa.Column('radius_m', sa.Float(), nullable=True),
    sa.Column('geometry', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'],
        name=op.f('fk_school_zones_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('place_id', name=op.f('pk_school_zones'))
    )
    op.create_table('shelters',
    sa.Column('place_id', sa.Integer(), nullable=False),
    sa.Column('shelter_kind', sa.String(length=32), nullable=False),
    sa.Column('capacity', sa.Integer(), nullable=True),
    sa.Column('floor_area_m2', sa.Float(), nullable=True),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'], name=op.f('fk_shelters_place_id_places'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('place_id', name=op.f('pk_shelters'))
    )
    op.create_table('things',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('properties', sa.JSON(), nullable=True),
    sa.Column('place_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['place_id'], ['places.id'], name=op.f('fk_things_place_id_places'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_things'))
    )
    op.create_table('datastreams',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('description', sa.Text(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('sensor_id', sa.Integer(), nullable=False),
    sa.Column('observed_property_id', sa.Integer(), nullable=False),
    sa.Column('unit_name', sa.String(length=100), nullable=False),
    sa.Column('unit_symbol', sa.String(length=32), nullable=False),
    sa.Column('unit_definition', sa.String(length=500), nullable=False),
    sa.Column('observation_type', sa.String(length=200), nullable=False),
    sa.Column('area_code', sa.String(length=10), nullable=True),
    sa.Column('properties', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['area_code'], ['admin_areas.code'], name=op.f('fk_datastreams_area_code_admin_areas')),
    sa.ForeignKeyConstraint(['observed_property_id'], ['observed_properties.id'],
        name=op.f('fk_datastreams_observed_property_id_observed_properties')),
    sa.ForeignKeyConstraint(['sensor_id'], ['sensors.id'], name=op.f('fk_datastreams_sensor_id_sensors')),
    sa.ForeignKeyConstraint(['thing_id'], ['things.id'],
        name=op.f('fk_datastreams_thing_id_things'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_datastreams'))
    )
    with op.batch_alter_table('datastreams', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_datastreams_area_code'), ['area_code'], unique=False)
        batch_op.create_index(batch_op.f('ix_datastreams_observed_property_id'), ['observed_property_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_datastreams_thing_id'), ['thing_id'], unique=False)

    op.create_table('historical_locations',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.Column('time', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'],
        name=op.f('fk_historical_locations_location_id_locations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['thing_id'], ['things.id'],
        name=op.f('fk_historical_locations_thing_id_things'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_historical_locations'))
    )
    with op.batch_alter_table('historical_locations', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_historical_locations_thing_id'), ['thing_id'], unique=False)

    op.create_table('thing_locations',
    sa.Column('thing_id', sa.Integer(), nullable=False),
    sa.Column('location_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['location_id'], ['locations.id'],
        name=op.f('fk_thing_locations_location_id_locations'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['thing_id'], ['things.id'],
        name=op.f('fk_thing_locations_thing_id_things'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('thing_id', 'location_id', name=op.f('pk_thing_locations'))
    )
    op.create_table('observations',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('datastream_id', sa.Integer(), nullable=False),
    sa.Column('phenomenon_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('result_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('result', sa.Float(), nullable=True),
    sa.Column('result_json', sa.JSON(), nullable=True),
    sa.Column('result_quality', sa.String(length=8), nullable=False),
    sa.Column('qc_reasons', sa.JSON(), nullable=True),
    sa.Column('feature_of_interest_id', sa.Integer(), nullable=True),
    sa.Column('parameters', sa.JSON(), nullable=True),
    sa.Column('received_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("result_quality IN ('good', 'suspect', 'bad')", name=op.f('ck_observations_quality')),
    sa.ForeignKeyConstraint(['datastream_id'], ['datastreams.id'],
        name=op.f('fk_observations_datastream_id_datastreams'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['feature_of_interest_id'], ['features_of_interest.id'],
        name=op.f('fk_observations_feature_of_interest_id_features_of_interest')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_observations')),
    sa.UniqueConstraint('datastream_id', 'phenomenon_time', name='uq_observations_stream_time')
    )


def downgrade() -> None:
    op.drop_table('observations')
    op.drop_table('thing_locations')
    with op.batch_alter_table('historical_locations', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_historical_locations_thing_id'))

    op.drop_table('historical_locations')
    with op.batch_alter_table('datastreams', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_datastreams_thing_id'))
        batch_op.drop_index(batch_op.f('ix_datastreams_observed_property_id'))
        batch_op.drop_index(batch_op.f('ix_datastreams_area_code'))

    op.drop_table('datastreams')
    op.drop_table('things')
    op.drop_table('shelters')
    op.drop_table('school_zones')
    op.drop_table('hospitals')
    op.drop_table('gauges')
    with op.batch_alter_table('fire_units', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_fire_units_station_place_id'))

    op.drop_table('fire_units')
    op.drop_table('facilities')
    with op.batch_alter_table('citizen_reports', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_citizen_reports_reported_at'))
        batch_op.drop_index(batch_op.f('ix_citizen_reports_area_code'))

    op.drop_table('citizen_reports')
    op.drop_table('cctv_cameras')
    op.drop_table('survey_results')
    with op.batch_alter_table('projects', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_projects_area_code'))

    op.drop_table('projects')
    with op.batch_alter_table('places', schema=None) as batch_op:
        batch_op.drop_index('ix_places_lon_lat')
        batch_op.drop_index(batch_op.f('ix_places_kind'))
        batch_op.drop_index(batch_op.f('ix_places_area_code'))

    op.drop_table('places')
    with op.batch_alter_table('land_use', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_land_use_area_code'))

    op.drop_table('land_use')
    with op.batch_alter_table('disasters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_disasters_started_at'))
        batch_op.drop_index(batch_op.f('ix_disasters_kind'))
        batch_op.drop_index(batch_op.f('ix_disasters_area_code'))

    op.drop_table('disasters')
    op.drop_table('area_statistics')
    op.drop_table('api_tokens')
    op.drop_table('sensors')
    op.drop_table('observed_properties')
    op.drop_table('locations')
    op.drop_table('features_of_interest')
    with op.batch_alter_table('dead_letters', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_dead_letters_received_at'))

    op.drop_table('dead_letters')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))

    op.drop_table('audit_log')
    with op.batch_alter_table('admin_areas', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_admin_areas_parent_code'))
        batch_op.drop_index(batch_op.f('ix_admin_areas_level'))

    op.drop_table('admin_areas')
