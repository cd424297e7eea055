"""geography version: triggers count every change to areas, statistics, places and sensor locations

Revision ID: 0018
Revises: 0017

Area facts (who and what a warning's area holds) are computed once per count and reused until a
change: a warning's alert no longer recomputes them from polygons each time (issue 17).
PostgreSQL counts per statement (a pack load is a few bumps, TRUNCATE included); SQLite, which has
only row triggers, per row. A later migration that rebuilds one of these tables on SQLite (batch
mode copies it) must create its triggers again: tests/test_area_facts.py checks each table bumps.
"""

import sqlalchemy as sa
from alembic import op

revision = '0018'
down_revision = '0017'
branch_labels = None
depends_on = None

TABLES = ("admin_areas", "area_statistics", "places", "things", "locations", "thing_locations", "datastreams")
BUMP = "UPDATE geography_version SET version = version + 1 WHERE id = 1"
FUNCTION = "haechi_geography_changed"


def upgrade() -> None:
    op.create_table(
        'geography_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_geography_version')),
    )
    op.execute("INSERT INTO geography_version (id, version) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"CREATE FUNCTION {FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$ "
                   f"BEGIN {BUMP}; RETURN NULL; END $$")
        for table in TABLES:
            op.execute(f"CREATE TRIGGER {table}_geography AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                       f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()")
        return
    for table in TABLES:
        for action in ("INSERT", "UPDATE", "DELETE"):
            op.execute(f"CREATE TRIGGER {table}_geography_{action.lower()} AFTER {action} ON {table} "
                       f"BEGIN {BUMP}; END")


def downgrade() -> None:
    postgres = op.get_bind().dialect.name == "postgresql"
    for table in TABLES:
        if postgres:
            op.execute(f"DROP TRIGGER IF EXISTS {table}_geography ON {table}")
        else:
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER IF EXISTS {table}_geography_{action}")
    if postgres:
        op.execute(f"DROP FUNCTION IF EXISTS {FUNCTION}()")
    op.drop_table('geography_version')
