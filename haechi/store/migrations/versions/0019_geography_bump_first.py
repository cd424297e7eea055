"""geography version: on PostgreSQL, count a statement's change before it locks any row

Revision ID: 0019
Revises: 0018

0018's statement triggers ran after the statement: a transaction held the rows it had changed
while it waited for the count's row, which another transaction, counting an earlier change, held
while it wanted those same rows: a deadlock, and PostgreSQL refused one of the two. Run before the
statement, every transaction takes the count's row before any row the count covers, always in that
order. SQLite locks the whole database for a writer and keeps its row triggers.
"""

from alembic import op

revision = '0019'
down_revision = '0018'
branch_labels = None
depends_on = None

TABLES = ("admin_areas", "area_statistics", "places", "things", "locations", "thing_locations", "datastreams")
FUNCTION = "haechi_geography_changed"


def upgrade() -> None:
    _triggers("BEFORE")


def downgrade() -> None:
    _triggers("AFTER")


def _triggers(when: str) -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS {table}_geography ON {table}")
        op.execute(f"CREATE TRIGGER {table}_geography {when} INSERT OR UPDATE OR DELETE OR TRUNCATE ON {table} "
                   f"FOR EACH STATEMENT EXECUTE FUNCTION {FUNCTION}()")
