"""Which engine leads: one active engine, hot standbys, the election left to PostgreSQL.

Everything stateful (warnings, forecasts, care, deliveries, schedules) must run in one process
at a time, or a second engine doubles every public alert. Engines do not elect among themselves:
the active one holds a PostgreSQL session advisory lock (``haechi.store.cluster``), which the
server frees the moment the holder's connection drops, even on ``kill -9``. A standby tries the
lock every second and starts the engine only once it holds it. A leader that loses its lock
connection (database restart, network) can no longer prove it leads, so it stops acting at once;
the runtime then ends the process with an error and its supervisor restarts it as a standby.
Cut off by the network, it stops within CHECK_S + CHECK_TIMEOUT_S, before the server gives its
session up. A session the server ends (``pg_terminate_backend``, a restart) frees the lock at once
and the leader sees it at once too, yet a standby may take the lock while the old leader is still
stopping: what the engine writes must be idempotent (alert identifiers unique in the DB).

Without an election (SQLite, or no bus: nothing reaches another engine) the one process leads.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta
from typing import Protocol

import psycopg
from sqlalchemy import Engine

from haechi.core.clock import utcnow
from haechi.store import cluster

from .membership import GONE_AFTER_S
from .part import Context, Role

log = logging.getLogger(__name__)

#: A standby tries the lock this often: the lock is taken at most this long after it is freed,
#: well inside the 10 s a standby has to take over after the leader is killed.
RETRY_S = 1.0
#: The leader watches its lock connection (a session the server ends is seen at once) and proves
#: it alive this often, giving it this long to answer: a leader cut off from the database stops
#: within CHECK_S + CHECK_TIMEOUT_S (3 s), before the server gives its session up (~5 s,
#: ``cluster.SERVER_KEEPALIVE``) and a standby can take over.
CHECK_S, CHECK_TIMEOUT_S = 1.0, 2.0


class LeadershipLost(RuntimeError):
    """The lead is gone: the engine stopped acting and the process must end (and be restarted)."""


class Leadership(Protocol):
    """The right to run the engine role. ``held`` once ``acquire`` returned True, until lost or released."""

    held: bool

    async def acquire(self, *, wait: bool = True) -> bool:
        """Take the lead; with ``wait``, keep trying until it is ours (True), else try once."""

    async def until_lost(self) -> str:
        """Return (why) when the lead is lost; never while it is held."""

    async def release(self) -> None:
        """Give the lead up (a clean stop): a standby takes it at its next try."""


class Always:
    """No election: this process is the only engine (embedded, or no bus to share events over)."""

    def __init__(self) -> None:
        self.held = True  # from the start: the membership row says so before the engine has started

    async def acquire(self, *, wait: bool = True) -> bool:
        self.held = True
        return True

    async def until_lost(self) -> str:
        await asyncio.Event().wait()  # never
        raise AssertionError("unreachable")

    async def release(self) -> None:
        self.held = False


class PostgresLeadership:
    """The lead as the PostgreSQL advisory lock of ``engine``'s database, for the member ``name``."""

    def __init__(self, engine: Engine, name: str) -> None:
        self.engine, self.name, self.held = engine, name, False
        self.lock = cluster.AdvisoryLock(engine, application_name=f"haechi-engine {name}")
        self._announced: object = _NOBODY

    async def acquire(self, *, wait: bool = True) -> bool:
        while True:
            if await self._try():
                await asyncio.to_thread(self._claim)
                log.info("leading: engine %s holds the engine lock; starting the engine", self.name)
                return True
            if not wait:
                return False
            await self._announce_standby()
            await asyncio.sleep(RETRY_S)

    async def _try(self) -> bool:
        self.held = await try_lock(self.lock, "engine lock")
        return self.held

    def _claim(self) -> None:
        with self.engine.begin() as conn:
            cluster.claim_lead(conn, self.name, utcnow())

    async def _announce_standby(self) -> None:
        """Say who leads whenever that changes (first from nobody known to a name, say)."""
        try:
            leader = await asyncio.to_thread(self._leader)
        except Exception as exc:  # noqa: BLE001 - a standby only wants the name for its log
            leader = f"(unknown: {exc.__class__.__name__})"
        if leader != self._announced:
            self._announced = leader
            log.info("standing by: engine %s leads; trying the engine lock every %g s",
                     leader or "(not yet registered)", RETRY_S)

    def _leader(self) -> str | None:
        with self.engine.connect() as conn:
            return cluster.leader(conn, utcnow() - timedelta(seconds=GONE_AFTER_S))

    async def until_lost(self) -> str:
        why = await until_lock_lost(self.lock, "engine lock")
        self.held = False
        return why

    async def release(self) -> None:
        held, self.held = self.held, False
        await self.lock.close()  # ends the session: the lock is free at once
        if held:
            log.info("engine %s gave up the lead", self.name)


_NOBODY = object()


async def try_lock(lock: cluster.AdvisoryLock, what: str) -> bool:
    """Take ``lock`` if it is free; a database out of reach is a no for now (logged, tried again)."""
    try:
        return await lock.try_acquire()
    except (OSError, psycopg.Error) as exc:
        log.warning("%s unreachable (%s); trying again in %g s", what, exc, RETRY_S)
        return False


async def until_lock_lost(lock: cluster.AdvisoryLock, what: str) -> str:
    """Return (why) once ``lock``, held, can no longer be proved ours; its session is closed then."""
    while True:
        try:
            await lock.watch(CHECK_S, CHECK_TIMEOUT_S)
        except Exception as exc:  # noqa: BLE001 - whatever it is, the lock can no longer be proved ours
            await lock.close()
            return f"the {what}'s connection failed: {exc!r}"


def competing(context: Context) -> bool:
    """Whether other processes may run what this one runs, so one at a time must be elected: a bus
    to share events over, and PostgreSQL to hold the lock."""
    return bool(context.settings.bus_url) and context.engine.dialect.name == "postgresql"


def elect(context: Context, roles: frozenset[Role]) -> Leadership | None:
    """How a process with these roles leads: None without the engine role; an election only where
    engines can compete (:func:`competing`), else :class:`Always`."""
    if Role.ENGINE not in roles:
        return None
    return PostgresLeadership(context.engine, context.member) if competing(context) else Always()
