"""Forecasts on their own: the river model runs whenever a gauge it forecasts reports.

Listens to ``observation.stored``. A new good reading of a modelled gauge's water level starts a run
of :func:`live.forecast_rivers` (one run at a time); its forecasts are announced like readings, so
the forecast criteria raise "Likely" warnings before the observed ones. A run is issued at the time
of the newest reading it was started by: a replay stamps its forecasts and their warnings in the
scenario's time, and a live system within the ingest delay of the wall clock. Forecasts themselves
(source ``predict…``) never start a run.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine, func, select

from haechi.core.events import Bus, Event
from haechi.model.events import OBSERVATION_STORED
from haechi.store.schema import datastreams

from . import live, river
from .publish import announce

log = logging.getLogger(__name__)
SOURCE = "predict:river"


class RiverForecaster:
    """Runs the river model on each new gauge reading and announces the forecasts."""

    def __init__(self, db: Engine, bus: Bus) -> None:
        self.db, self.bus = db, bus
        self._lock = asyncio.Lock()
        self._gauges: frozenset[int] = frozenset()
        self._newest_known = -1  # the newest datastream id when the gauges were read
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        self._unsubscribe = self.bus.subscribe(OBSERVATION_STORED, self.on_stored)

    def stop(self) -> None:
        if self._unsubscribe:
            self._unsubscribe()

    async def on_stored(self, event: Event) -> None:
        if str(event.data.get("source", "")).startswith("predict"):
            return
        readings = event.data["observations"]
        gauges = await self._gauge_streams(max((o["datastream_id"] for o in readings), default=-1))
        times = [o["phenomenon_time"] for o in readings
                 if o["datastream_id"] in gauges and o["quality"] == "good"]
        if times:
            await self.run(max(datetime.fromisoformat(t) for t in times))

    async def run(self, issued_at: datetime) -> list[dict[str, Any]]:
        """Forecast every modelled gauge from its latest reading; announce and return what was stored."""
        async with self._lock:
            stored = await anyio.to_thread.run_sync(lambda: live.forecast_rivers(self.db, issued_at=issued_at))
        await announce(self.bus, stored, source=SOURCE)
        return stored

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
