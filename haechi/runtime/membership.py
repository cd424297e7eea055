"""Seeing the cluster: every process registers in ``cluster_members`` and heartbeats there.

The platform part runs :class:`Membership` in every role, on a standby engine too: the row says
what the process runs, whether it leads and how far its durable JetStream consumers are behind.
A clean stop removes the row; a killed process leaves it, and readers call it gone once it has
missed a few heartbeats (``haechi cluster status``). ``/metrics`` reads the same figures.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from datetime import datetime, timedelta
from typing import Any

from haechi.core.clock import utcnow
from haechi.store import cluster

from .part import Context

log = logging.getLogger(__name__)

#: How often a process says it is alive (and refreshes its lag): a few seconds keeps the table
#: current for operators at one tiny write per process.
HEARTBEAT_S = 5.0
#: A member that missed three heartbeats in a row is gone (killed, or its machine is).
GONE_AFTER_S = 3 * HEARTBEAT_S
#: Rows of members gone this long are dropped: a day keeps last night's failover visible.
FORGET_AFTER_S = 24 * 3600.0


def is_gone(member: dict[str, Any], now: datetime) -> bool:
    return now - member["seen_at"] > timedelta(seconds=GONE_AFTER_S)


def roles_label(roles) -> str:
    return "+".join(sorted(str(r) for r in roles))


class Membership:
    """This process's row: written at start and every heartbeat, removed at a clean stop."""

    def __init__(self, context: Context) -> None:
        self.context = context
        self.name, self.roles = context.member, roles_label(context.roles)
        self.host, self.pid, self.started_at = socket.gethostname(), os.getpid(), utcnow()
        #: lag of each durable consumer of this process's bus, as of the last heartbeat
        self.consumers: dict[str, int] = {}
        self._saving: asyncio.Future | None = None  # a write in its thread: stop waits for it

    @property
    def leading(self) -> bool:
        lead = self.context.leadership
        return bool(lead is not None and lead.held)

    @property
    def lag(self) -> int | None:
        return sum(self.consumers.values()) if self.consumers else None

    async def start(self) -> None:
        await self.beat()

    async def beat(self) -> None:
        """Refresh the lag figures, then the row (and forget members long gone)."""
        self.consumers = await self._consumer_lag()
        self._saving = asyncio.ensure_future(asyncio.to_thread(self._save))
        await asyncio.shield(self._saving)  # a cancelled heartbeat's thread still writes: let it finish

    async def stop(self) -> None:
        """Leave the table, after any heartbeat still writing (else it would put the row back)."""
        if self._saving is not None:
            await asyncio.gather(self._saving, return_exceptions=True)
        await asyncio.to_thread(self._leave)

    def row(self) -> dict[str, Any]:
        return {"name": self.name, "roles": self.roles, "host": self.host[:255], "pid": self.pid,
                "started_at": self.started_at, "seen_at": utcnow(), "leader": self.leading, "lag": self.lag,
                "consumers": self.consumers or None}

    async def _consumer_lag(self) -> dict[str, int]:
        lag = getattr(self.context.bus, "consumer_lag", None)  # the NATS bus's; the in-process bus has none
        if lag is None:
            return {}
        try:
            return await lag()
        except Exception as exc:  # noqa: BLE001 - the heartbeat goes on with the figures it had
            log.warning("consumer lag unavailable (%s)", exc)
            return self.consumers

    def _save(self) -> None:
        with self.context.engine.begin() as conn:
            cluster.save(conn, self.row())
            cluster.prune(conn, utcnow() - timedelta(seconds=FORGET_AFTER_S))

    def _leave(self) -> None:
        with self.context.engine.begin() as conn:
            cluster.leave(conn, self.name)


async def heartbeat(context: Context) -> None:
    await context["membership"].beat()
