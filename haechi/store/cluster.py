"""The cluster's records, and the engines' election lock on PostgreSQL.

``cluster_members`` holds one row per running process, written by the process itself at start,
on every heartbeat and removed at a clean stop (``haechi.runtime.membership``). The lock is a
PostgreSQL session-level advisory lock on a connection of its own: the server holds it for as
long as that session lives and frees it the moment the session ends, however the holder died
(``kill -9`` closes its socket; a dead machine is noticed by TCP keepalives, set short here).
"""

from __future__ import annotations

import asyncio
import contextlib
from datetime import datetime
from typing import Any

import psycopg
from sqlalchemy import Connection, Engine, delete, select, update
from sqlalchemy.engine import make_url

from .schema import cluster_members
from .sql import row_dict, upsert

#: The advisory lock the engines compete for: "HAECHI" and issue 15 in hex. Advisory locks are
#: per database, so each installation (each integrated DB) elects its own engine.
LOCK_KEY = 0x4841_4543_4849_0015
#: The lock of the one API replica that reads MQTT (one broker session, one client id): issue 17.
MQTT_INGEST_LOCK_KEY = 0x4841_4543_4849_0017
#: The server side of the lock's connection: a holder whose machine died (no FIN ever comes) is
#: given up after 2 s of silence and 3 unanswered probes 1 s apart, ~5 s, and the lock is free.
SERVER_KEEPALIVE = ("-c tcp_keepalives_idle=2 -c tcp_keepalives_interval=1 -c tcp_keepalives_count=3"
                    " -c tcp_user_timeout=5000")
#: The client side: the holder notices a dead server or network as quickly (libpq parameters).
CLIENT_KEEPALIVE: dict[str, Any] = {"keepalives": 1, "keepalives_idle": 2, "keepalives_interval": 1,
                                    "keepalives_count": 3, "tcp_user_timeout": 5000, "connect_timeout": 5}
#: A lock connection's own statements give up this fast: they are trivial, so slower means gone.
LOCK_STATEMENT_TIMEOUT_MS = 2000


# ── members ──────────────────────────────────────────────────────────────────────────────


def save(conn: Connection, member: dict[str, Any]) -> None:
    """Register or refresh a member (every column of its row, ``name`` first of all)."""
    upsert(conn, cluster_members, [member], ["name"])


def claim_lead(conn: Connection, name: str, at: datetime) -> None:
    """``name`` leads now, no one else: called by the lock's new holder, so the old leader's flag goes."""
    conn.execute(update(cluster_members).where(cluster_members.c.name != name).values(leader=False))
    conn.execute(update(cluster_members).where(cluster_members.c.name == name).values(leader=True, seen_at=at))


def leader(conn: Connection, seen_since: datetime) -> str | None:
    """The name of the member flagged as leading and seen since ``seen_since``, if any."""
    return conn.execute(
        select(cluster_members.c.name)
        .where(cluster_members.c.leader.is_(True), cluster_members.c.seen_at >= seen_since)
        .order_by(cluster_members.c.seen_at.desc()).limit(1)
    ).scalar()


def members(conn: Connection) -> list[dict[str, Any]]:
    """Every member, leaders first, then by roles and name."""
    query = select(cluster_members).order_by(cluster_members.c.leader.desc(), cluster_members.c.roles,
                                             cluster_members.c.name)
    return [row_dict(r) for r in conn.execute(query)]


def leave(conn: Connection, name: str) -> None:
    conn.execute(delete(cluster_members).where(cluster_members.c.name == name))


def prune(conn: Connection, seen_before: datetime) -> int:
    """Forget members not seen since ``seen_before`` (processes that died long ago)."""
    return conn.execute(delete(cluster_members).where(cluster_members.c.seen_at < seen_before)).rowcount


# ── the election lock ────────────────────────────────────────────────────────────────────


class AdvisoryLock:
    """The engines' lock on the PostgreSQL behind ``engine``, over a dedicated connection.

    ``application_name`` names the holder in ``pg_stat_activity``. The connection is opened on
    the first try and kept: a standby's tries cost one round trip each.
    """

    def __init__(self, engine: Engine, application_name: str, key: int = LOCK_KEY) -> None:
        self.conninfo = make_url(engine.url).set(drivername="postgresql").render_as_string(hide_password=False)
        self.application_name, self.key = application_name[:63], key
        self._conn: psycopg.AsyncConnection | None = None

    async def try_acquire(self) -> bool:
        """Take the lock if it is free; False when another session holds it. Connection errors raise."""
        conn = await self._connection()
        try:
            row = await (await conn.execute("SELECT pg_try_advisory_lock(%s)", (self.key,))).fetchone()
        except psycopg.Error:
            await self.close()
            raise
        return bool(row[0])

    async def watch(self, period_s: float, timeout_s: float) -> None:
        """Return after ``period_s`` if the holding session lives on; raise the moment it ends.

        The connection is read for ``period_s`` (a session the server ends, by a restart or
        ``pg_terminate_backend``, is seen at once), then must answer ``SELECT 1`` within
        ``timeout_s`` (a server or network that went silent).
        """
        conn = self._conn
        if conn is None or conn.closed:
            raise ConnectionError("the lock's connection is closed")
        async for _ in conn.notifies(timeout=period_s):
            pass  # nothing is LISTENed to: this only waits on the socket
        probe = asyncio.ensure_future(conn.execute("SELECT 1"))
        done, _ = await asyncio.wait({probe}, timeout=timeout_s)  # never cancelled: a cancel may itself hang
        if not done:
            probe.add_done_callback(_ignore)
            raise TimeoutError(f"the lock's connection did not answer within {timeout_s:g} s")
        probe.result()

    async def close(self, timeout_s: float = 2.0) -> None:
        """End the session, which frees the lock if held (a hung close is given up after ``timeout_s``)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            closing = asyncio.ensure_future(conn.close())
            closing.add_done_callback(_ignore)
            await asyncio.wait({closing}, timeout=timeout_s)

    async def _connection(self) -> psycopg.AsyncConnection:
        if self._conn is None or self._conn.closed:
            self._conn = await psycopg.AsyncConnection.connect(
                self.conninfo, autocommit=True, application_name=self.application_name,
                options=f"{SERVER_KEEPALIVE} -c statement_timeout={LOCK_STATEMENT_TIMEOUT_MS}", **CLIENT_KEEPALIVE)
        return self._conn


def _ignore(task: asyncio.Future) -> None:
    with contextlib.suppress(BaseException):
        task.exception()
