"""The dead-letter store: every rejected input, kept raw with the reason it was refused."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, insert, select, update

from haechi.core.clock import utcnow
from haechi.core.errors import NotFound

from .schema import dead_letters
from .sql import row_dict

#: The source prefix of a warning no district holds (``warning:<area key>``): a record for an
#: operator to place its sensor, not readings, so ``deadletter replay`` leaves it.
WARNING_SOURCE = "warning:"


def replayable(letter: dict[str, Any]) -> bool:
    """Whether a letter holds readings to send through the pipeline again."""
    return not letter["source"].startswith(WARNING_SOURCE)


def keep(conn: Connection, source: str, reason: str, payload: bytes | str) -> int:
    raw = payload.decode("utf-8", errors="replace") if isinstance(payload, bytes) else payload
    return conn.execute(
        insert(dead_letters).values(received_at=utcnow(), source=source, reason=reason, payload=raw)
    ).inserted_primary_key[0]


def pending(conn: Connection, *, source: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = (
        select(dead_letters).where(dead_letters.c.replayed_at.is_(None)).order_by(dead_letters.c.id).limit(limit)
    )
    if source:
        query = query.where(dead_letters.c.source.startswith(source))
    return [row_dict(r) for r in conn.execute(query)]


def get(conn: Connection, letter_id: int) -> dict[str, Any]:
    row = conn.execute(select(dead_letters).where(dead_letters.c.id == letter_id)).first()
    if row is None:
        raise NotFound(f"no dead letter with id {letter_id}")
    return row_dict(row)


def mark_replayed(conn: Connection, letter_id: int) -> None:
    conn.execute(update(dead_letters).where(dead_letters.c.id == letter_id).values(replayed_at=utcnow()))
