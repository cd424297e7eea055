"""Alembic environment: runs on the engine handed over by ``haechi.store.db``."""

from alembic import context
from sqlalchemy import create_engine

from haechi.store.schema import UtcDateTime, metadata

config = context.config
engine = config.attributes.get("engine") or create_engine(config.get_main_option("sqlalchemy.url"))


def render_item(kind, obj, _context):
    # Migrations hold plain SQL types; UTC handling is the runtime schema's business.
    if kind == "type" and isinstance(obj, UtcDateTime):
        return "sa.DateTime(timezone=True)"
    return False


with engine.begin() as connection:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite alters tables by copying
        compare_type=True,
        render_item=render_item,
    )
    context.run_migrations()
