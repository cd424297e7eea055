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


def test_replicas_started_together_migrate_a_new_database_once():
    """A rolling deploy starts several servers on one new PostgreSQL database at once: each runs
    the migrations at start-up; all must come up, and the schema be built once."""
    import subprocess
    import sys

    from conftest import fresh_postgres
    from sqlalchemy import text

    with fresh_postgres("haechi_migrate", migrated=False) as url:
        start = "import sys; from haechi.store.db import make_engine, upgrade; upgrade(make_engine(sys.argv[1]))"
        engine = make_engine(url)
        try:
            replicas = [subprocess.Popen([sys.executable, "-c", start, url], stderr=subprocess.PIPE, text=True)
                        for _ in range(4)]
            errors = [r.communicate(timeout=120)[1] for r in replicas]
            failed = [err for r, err in zip(replicas, errors, strict=True) if r.returncode]
            assert failed == []  # a replica whose migration broke on another's exits with its traceback
            assert _differences(engine) == []
            with engine.connect() as conn:
                assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1
        finally:
            engine.dispose()
