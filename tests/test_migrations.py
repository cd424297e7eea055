"""The migrations build exactly the schema the code declares, on SQLite and PostgreSQL.

Several issues add tables at once; this catches a table or column added to ``schema.py``
without its migration (or the reverse) before a user's database meets it.
"""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from haechi.store.db import downgrade_all, make_engine, upgrade
from haechi.store.schema import metadata


def _differences(engine):
    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        return compare_metadata(context, metadata)


def test_migrations_match_the_declared_schema(db_url):
    engine = make_engine(db_url)
    try:
        assert _differences(engine) == []
    finally:
        engine.dispose()


def test_every_migration_downgrades_and_upgrades_again(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'roundtrip.db'}")
    try:
        upgrade(engine)
        downgrade_all(engine)
        upgrade(engine)
        assert _differences(engine) == []
    finally:
        engine.dispose()
