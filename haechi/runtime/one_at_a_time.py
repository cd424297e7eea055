"""A service one process of the cluster runs at a time, the others standing by: the MQTT ingest.

An MQTT subscriber's persistent session belongs to its client id, and two connections under one
id push each other off the broker. So every API replica may be given ``HAECHI_MQTT_URL``, but only
the one holding the service's PostgreSQL advisory lock runs it; the others try the lock every
second (as standby engines do, :mod:`.leader`). When the holder dies, the server ends its session
and frees the lock; a standby takes it, connects under the same client id and resumes the same
broker session: what the broker queued meanwhile, and what the dead holder had not acknowledged,
comes to it. Nothing is lost, and nothing is stored twice (the store's idempotency key).

A holder that can no longer prove it holds the lock (its database connection failed or went
silent) stops the service at once: a standby may take over within seconds, and two subscribers
under one id would push each other off the broker.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

from haechi.store.cluster import AdvisoryLock

from .leader import RETRY_S, try_lock, until_lock_lost
from .part import call

log = logging.getLogger(__name__)


class OneAtATime:
    """Runs what ``build`` makes while this process holds ``lock``; stands by otherwise.

    ``running`` is the service while it runs here, else None (standing by, or handing over).
    """

    def __init__(self, build: Callable[[], Any], lock: AdvisoryLock, what: str, member: str) -> None:
        self.build, self.lock, self.what, self.member = build, lock, what, member
        self.running: Any = None
        self.takeovers = 0  # times this process took the service on (tests read it)
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Returns at once; the service starts here once the lock is ours."""
        self._task = asyncio.create_task(self._run(), name=f"one-at-a-time {self.what}")

    async def stop(self) -> None:
        """Stop the service if it runs here, then free the lock (a standby takes it at its next try)."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self._stop_running()
        await self.lock.close()

    async def _run(self) -> None:
        standing_by = False
        while True:
            if not await try_lock(self.lock, f"{self.what} lock"):
                if not standing_by:
                    log.info("standing by for %s: another process runs it; trying its lock every %g s",
                             self.what, RETRY_S)
                    standing_by = True
                await asyncio.sleep(RETRY_S)
                continue
            standing_by = False
            self.takeovers += 1
            log.info("%s runs here, on %s (it holds the lock)", self.what, self.member)
            try:
                service = self.build()
                await call(service.start)
            except Exception:  # give the lock up rather than hold it with nothing running
                log.exception("%s could not start here; giving its lock up", self.what)
                await self.lock.close()
                await asyncio.sleep(RETRY_S)
                continue
            self.running = service
            why = await until_lock_lost(self.lock, f"{self.what} lock")
            log.warning("%s stops here: %s; a standby takes it over", self.what, why)
            await self._stop_running()

    async def _stop_running(self) -> None:
        running, self.running = self.running, None
        if running is not None:
            await call(running.stop)
