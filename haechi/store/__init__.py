"""The integrated DB (통합DB): schema, migrations, connection and repositories."""

from sqlalchemy import Engine

from haechi.core.settings import get_settings

from .db import make_engine, upgrade


def open_db(url: str) -> Engine:
    """Connect to the integrated DB at ``url`` and bring its schema up to date."""
    engine = make_engine(url)
    upgrade(engine)
    return engine


def open_engine(url: str | None = None) -> Engine:
    """The integrated DB named by ``url`` (or the settings), migrated: what CLI commands open."""
    return open_db(url or get_settings().database_url)
