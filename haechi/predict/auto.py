"""Forecasts on their own: the river model runs when a gauge it forecasts reports, off the ingest path.

Listens to ``observation.stored``. A new good reading of a modelled gauge's water level is only
noted: the handler never waits for a run, so the ingest (and the MQTT broker behind it) never waits
on the model. The forecaster's own task runs :func:`live.forecast_rivers` for that gauge, at most
once per gauge per interval of the readings' time (``data/triggers.toml``), on the latest reading:
a babbling gauge costs a run per interval, not per reading, and cannot delay any other stream.
Its forecasts are announced like readings, so the forecast criteria raise "Likely" warnings
before the observed ones. A run is issued at the time of the reading it forecasts from: a replay
stamps its forecasts and their warnings in the scenario's time, and a live system within the
ingest delay of the wall clock. Forecasts themselves (source ``predict…``) never start a run.
Noted readings live in memory: a forecaster that starts (after a crash, on the engine that takes
over, after an import) first forecasts each gauge whose newest reading no forecast was made from.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tomllib
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, func, select

from haechi.core.coalesce import Coalescer
from haechi.core.events import Bus, Event
from haechi.model.events import OBSERVATION_STORED
from haechi.store.schema import datastreams

from . import live, river
from .publish import announce

log = logging.getLogger(__name__)
SOURCE = "predict:river"
TRIGGERS = Path(__file__).with_name("data") / "triggers.toml"


def trigger_interval(model: str, path: Path = TRIGGERS) -> timedelta:
    """The least time between two runs of ``model`` for one stream, from ``data/triggers.toml``."""
    return timedelta(seconds=tomllib.loads(path.read_text(encoding="utf-8"))[model]["interval_s"])


class RiverForecaster:
    """Runs the river model on new gauge readings, coalesced per gauge, and announces the forecasts.

    ``await settled()`` returns once every run due has been made (a replay paces itself on it).
    """

    def __init__(self, db: Engine, bus: Bus, interval: timedelta | None = None, linger: float | None = None) -> None:
        self.db, self.bus = db, bus
        interval = interval if interval is not None else trigger_interval("river")
        # A reading inside the interval still gets its run, after waiting as long in wall time (seconds).
        self.pending: Coalescer[int] = Coalescer(interval, interval.total_seconds() if linger is None else linger)
        self.runs = 0  # runs made since start, for tests and metrics
        self.lock = asyncio.Lock()  # one run at a time
        self._gauges: frozenset[int] = frozenset()
        self._newest_known = -1  # the newest datastream id when the gauges were read
        self._unsubscribe: Callable[[], None] | None = None
        self._wake, self._idle = asyncio.Event(), asyncio.Event()
        self._idle.set()
        self._task: asyncio.Task | None = None

    async def start(self) -> None:
        """Listen for readings, then catch up: the gauges' readings stored while no forecaster ran (a
        crash or a failover of the engine, an import) had their events taken without a run."""
        self._unsubscribe = self.bus.subscribe(OBSERVATION_STORED, self.on_stored)
        behind = await anyio.to_thread.run_sync(live.unforecast_gauges, self.db)
        if behind:
            log.info("forecasting %d gauges from readings no forecast was made from", len(behind))
        self._offer(behind.items())
        self._task = asyncio.create_task(self._work(), name="river-forecaster")

    async def stop(self, grace: float = 30.0) -> None:
        """Make the runs already due (up to ``grace`` seconds), then stop."""
        if self._unsubscribe:
            self._unsubscribe()
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.settled(), grace)
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def settled(self) -> None:
        """Until no run is due or under way (readings waiting out their interval are not due)."""
        await self._idle.wait()

    async def on_stored(self, event: Event) -> None:
        """Note the gauges' new readings; never waits for a run."""
        if str(event.data.get("source", "")).startswith("predict"):
            return
        readings = event.data["observations"]
        gauges = await self._gauge_streams(max((o["datastream_id"] for o in readings), default=-1))
        self._offer((o["datastream_id"], datetime.fromisoformat(o["phenomenon_time"]))
                    for o in readings if o["datastream_id"] in gauges and o["quality"] == "good")

    def _offer(self, readings: Iterable[tuple[int, datetime]]) -> None:
        now = asyncio.get_running_loop().time()
        offered = False
        for stream, time in readings:
            self.pending.offer(stream, time, now)
            offered = True
        if offered:
            self._idle.clear()
            self._wake.set()

    async def run(self, issued_at: datetime, ends: dict[int, datetime] | None = None) -> list[dict[str, Any]]:
        """Forecast the gauges of ``ends`` (all from their latest reading when None); announce and return them."""
        async with self.lock:
            stored = await anyio.to_thread.run_sync(
                lambda: live.forecast_rivers(self.db, issued_at=issued_at, ends=ends))
            self.runs += 1
        await announce(self.bus, stored, source=SOURCE)
        return stored

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            for stream, time in self.pending.due(loop.time()):
                try:
                    await self.run(time, {stream: time})
                except Exception:
                    log.exception("the river forecast of datastream %s at %s failed", stream, time.isoformat())
            if self.pending.due_any(loop.time()):
                continue
            self._idle.set()
            self._wake.clear()
            linger_end = self.pending.next_linger_end()
            timeout = None if linger_end is None else max(0.0, linger_end - loop.time())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    async def _gauge_streams(self, newest_seen: int) -> frozenset[int]:
        """The modelled gauges' level streams, read again when a datastream newer than the last read
        reports (a city pack, a scenario or an import adds gauges)."""
        if newest_seen > self._newest_known:
            self._gauges, self._newest_known = await anyio.to_thread.run_sync(self._read_gauges)
        return self._gauges

    def _read_gauges(self) -> tuple[frozenset[int], int]:
        with self.db.connect() as conn:
            streams = live.station_streams(conn, ("river_gauge",), ("water_level",))
            newest = conn.execute(select(func.max(datastreams.c.id))).scalar() or 0
        return frozenset(i for (_, ref, _), i in streams.items() if ref in river.GAUGES), newest
