"""The integrated DB (통합DB): schema, migrations, connection and repositories."""

from sqlalchemy import Engine

from .db import make_engine, upgrade


def open_db(url: str) -> Engine:
    """Connect to the integrated DB at ``url`` and bring its schema up to date."""
    engine = make_engine(url)
    upgrade(engine)
    return engine
