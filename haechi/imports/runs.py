"""What an import did: counts a person can check, rejected rows kept with reasons, the run recorded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
from sqlalchemy import Connection, Engine, insert, select, update

from haechi.core.clock import utcnow
from haechi.store.schema import dead_letters, import_runs
from haechi.store.sql import row_dict

#: progress(done, total) in bytes (or items when the size is unknown: total None).
Progress = Callable[[int, int | None], None]
MAX_SAMPLES = 100  # rejections shown in a report; all of them are kept as dead letters


def no_progress(done: int, total: int | None) -> None:
    return None


@dataclass
class Outcome:
    """Each row read is exactly one of accepted, rejected or duplicate."""

    kind: str
    source: str
    encoding: str | None = None
    rows_read: int = 0
    rows_accepted: int = 0
    rows_rejected: int = 0
    rows_duplicate: int = 0
    observations_stored: int = 0
    observations_duplicate: int = 0
    quality: dict[str, int] = field(default_factory=lambda: {"good": 0, "suspect": 0, "bad": 0})
    ignored_columns: list[str] = field(default_factory=list)
    rejections: list[dict[str, Any]] = field(default_factory=list)  # the first MAX_SAMPLES
    run_id: int | None = None
    store_seconds: float = 0.0  # in the blocks' transactions (the rest is waiting for blocks to be read)

    def reject(self, row: int, field_name: str | None, reason: str) -> None:
        if len(self.rejections) < MAX_SAMPLES:
            self.rejections.append({"row": row, "field": field_name, "reason": reason})

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items()}


def keep_rejected(conn: Connection, kind: str, rows: list[tuple[str, dict[str, Any]]]) -> None:
    """Dead letters for rejected rows, in one statement: (reason, the row's cells with its number)."""
    if rows:
        now = utcnow()
        conn.execute(insert(dead_letters), [
            {"received_at": now, "source": f"import:{kind}", "reason": reason,
             "payload": orjson.dumps(payload, default=str).decode()} for reason, payload in rows])


def start(engine: Engine, kind: str, source: str, actor: str) -> int:
    with engine.begin() as conn:
        return conn.execute(insert(import_runs).values(
            kind=kind, source=source, actor=actor, started_at=utcnow(), status="running", rows_read=0,
            rows_accepted=0, rows_rejected=0, rows_duplicate=0, observations_stored=0)).inserted_primary_key[0]


def finish(engine: Engine, run_id: int, outcome: Outcome | None, error: str | None = None) -> None:
    values: dict[str, Any] = {"finished_at": utcnow(), "status": "failed" if error else "done", "error": error}
    if outcome is not None:
        values |= {k: getattr(outcome, k) for k in ("encoding", "rows_read", "rows_accepted", "rows_rejected",
                                                     "rows_duplicate", "observations_stored")}
    with engine.begin() as conn:
        conn.execute(update(import_runs).where(import_runs.c.id == run_id).values(**values))


def list_runs(conn: Connection, *, kind: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    query = select(import_runs).order_by(import_runs.c.id.desc()).limit(limit)
    if kind:
        query = query.where(import_runs.c.kind == kind)
    return [row_dict(r) for r in conn.execute(query)]
