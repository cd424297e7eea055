"""Drone positions on the live stream: whatever way telemetry arrived (MQTT, HTTP, SensorThings),
the pipeline publishes ``observation.stored``; this turns a drone's readings into ``drone.position``."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import anyio.to_thread
from sqlalchemy import Engine

from haechi.core.events import Bus, Event
from haechi.model.events import DRONE_POSITION, OBSERVATION_STORED

from . import repository

#: Body field of ``drone.position`` for each telemetry property.
FIELD = {"longitude": "lon", "latitude": "lat", "altitude": "altitude_m", "battery_level": "battery_pct"}


class DronePositions:
    """Subscribed to ``observation.stored``; remembers each drone's newest fix to publish it whole."""

    def __init__(self, engine: Engine, bus: Bus, refresh_s: float = 2.0) -> None:
        self.engine, self.bus, self.refresh_s = engine, bus, refresh_s
        self.streams: dict[int, tuple[dict[str, Any], str]] = {}
        self.loaded_at = float("-inf")
        self.fixes: dict[int, dict[str, Any]] = {}

    def start(self) -> Callable[[], None]:
        return self.bus.subscribe(OBSERVATION_STORED, self.on_stored)

    async def on_stored(self, event: Event) -> None:
        observations = event.data["observations"]
        ids = {o["datastream_id"] for o in observations}
        # Drones registered since the last look are found by reloading (at most every refresh_s).
        if ids - set(self.streams) and time.monotonic() - self.loaded_at > self.refresh_s:
            self.streams = await anyio.to_thread.run_sync(self._load)
            self.loaded_at = time.monotonic()
        moved: set[int] = set()
        for o in sorted(observations, key=lambda o: o["phenomenon_time"]):
            known = self.streams.get(o["datastream_id"])
            if known is None or o.get("quality") == "bad":
                continue
            drone, code = known
            fix = self.fixes.setdefault(drone["id"], {"drone_id": drone["id"], "call_sign": drone["call_sign"]})
            fix[FIELD[code]] = o["result"]
            fix["time"] = max(fix.get("time", ""), o["phenomenon_time"])
            if code in ("longitude", "latitude"):
                moved.add(drone["id"])
        for drone_id in sorted(moved):
            fix = self.fixes[drone_id]
            if "lon" in fix and "lat" in fix:
                await self.bus.publish(Event(DRONE_POSITION, dict(fix)))

    def _load(self) -> dict[int, tuple[dict[str, Any], str]]:
        with self.engine.connect() as conn:
            drones = repository.find_drones(conn)
        return {int(stream): (d, code) for d in drones for code, stream in d["datastreams"].items()}


def watch_drone_positions(engine: Engine, bus: Bus) -> Callable[[], None]:
    """Start publishing ``drone.position``; returns the unsubscribe function."""
    return DronePositions(engine, bus).start()
