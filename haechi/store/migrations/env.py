"""Alembic environment: runs on the engine handed over by ``haechi.store.db``."""

from alembic import context
from sqlalchemy import create_engine, text

from haechi.store.schema import UtcDateTime, metadata

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))


def render_item(kind, obj, _context):
    # Migrations hold plain SQL types; UTC handling is the runtime schema's business.
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


#: Replicas started together (a rolling deploy, `docker compose up --scale api=3`) would each run the
#: same migration at once; on PostgreSQL the first takes this transaction lock and the others wait,
#: then find the schema at head and do nothing. "HAECHI" and "migrate" in hex, apart from the
#: engines' election lock (haechi.store.cluster.LOCK_KEY).
MIGRATION_LOCK_KEY = 0x4841_4543_4849_0D16

with engine.begin() as connection:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
        render_item=render_item,
    )
    context.run_migrations()
