"""Small dialect-aware helpers shared by the repositories."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import Connection, Table
from sqlalchemy.dialects import postgresql, sqlite


def _insert(conn: Connection, table: Table):
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    return dialect.insert(table)


def upsert(
    conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], key: Iterable[str]
) -> int:
    """Insert ``rows``, overwriting the other columns of any row whose ``key`` already exists."""
    if not rows:
        return 0
    key = list(key)
    # executemany binds the first row's keys only: give every row the same columns.
    columns = list(dict.fromkeys(c for r in rows for c in r))
    rows = [{c: r.get(c) for c in columns} for r in rows]
    stmt = _insert(conn, table)
    updates = {c: stmt.excluded[c] for c in columns if c not in key}
    stmt = stmt.on_conflict_do_update(index_elements=key, set_=updates) if updates else (
        stmt.on_conflict_do_nothing(index_elements=key)
    )
    conn.execute(stmt, list(rows))
    return len(rows)


def insert_new(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]], key: Iterable[str]) -> int:
    """Insert the rows whose ``key`` is not stored yet; returns how many were new (idempotent writes)."""
    if not rows:
        return 0
    stmt = _insert(conn, table).on_conflict_do_nothing(index_elements=list(key))
    # RETURNING counts the rows really inserted; executemany rowcount is -1 on psycopg.
    stmt = stmt.returning(*table.primary_key.columns)
    return len(conn.execute(stmt, list(rows)).all())


def row_dict(row) -> dict[str, Any]:
    return dict(row._mapping)
