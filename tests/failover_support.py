"""Shared set-up of the exactly-once and failover tests: a PM10 station on the Seoul pack, readings
stored as the worker stores them, engines that start on a DB and are dropped as a kill would.

Holds no tests itself. An "engine process" here is a :class:`WarningService` on its own in-process
bus; dropping one without ``stop()`` is what ``kill -9`` leaves: nothing more is judged or
published by it, and whatever it had not recorded is only in the DB's readings.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from haechi.bus.memory import InProcessBus
from haechi.cities.load import load_city
from haechi.core.events import Event
from haechi.ingest.pipeline import Pipeline
from haechi.model.events import ALERT_SENT, OBSERVATION_STORED, WARNING_CHANGED
from haechi.model.reading import Reading
from haechi.store import sensing
from haechi.store.schema import alerts, warnings
from haechi.warnings.service import WarningService

DISTRICT = "11140"  # Jung-gu: a station there warns its district (fine_dust · district:11140)
TEN_MINUTES = timedelta(minutes=10)


def dust_station(engine) -> int:
    """The Seoul pack and one PM10 station reporting for ``DISTRICT``; returns its datastream id."""
    load_city(engine, "seoul")
    with engine.begin() as conn:
        prop = sensing.observed_property_ids(conn)["pm10"]
        thing = sensing.create_thing(conn, {"name": "중구 대기측정소", "description": "PM10 station"})
        sensor = sensing.create_sensor(conn, {"name": "beta gauge", "description": "", "encoding_type": "text/plain",
                                              "metadata": ""})
        return sensing.create_datastream(conn, {
            "name": "Jung-gu PM10", "thing_id": thing, "sensor_id": sensor, "observed_property_id": prop,
            "area_code": DISTRICT, "unit_name": "microgram per cubic metre", "unit_symbol": "ug/m3",
            "unit_definition": "ucum:ug/m3"})


def weather_station(engine) -> tuple[int, int]:
    """A station in ``DISTRICT`` measuring air temperature and humidity (the Seoul pack loaded by
    :func:`dust_station` first): the apparent temperature of the heat-wave rule is paired from them."""
    with engine.begin() as conn:
        props = sensing.observed_property_ids(conn)
        thing = sensing.create_thing(conn, {"name": "중구 AWS", "description": "weather station"})
        sensor = sensing.create_sensor(conn, {"name": "aws", "description": "", "encoding_type": "text/plain",
                                              "metadata": ""})
        return tuple(sensing.create_datastream(conn, {
            "name": f"Jung-gu {code}", "thing_id": thing, "sensor_id": sensor, "observed_property_id": props[code],
            "area_code": DISTRICT, "unit_name": unit, "unit_symbol": unit, "unit_definition": f"ucum:{unit}"})
            for code, unit in (("air_temperature", "Cel"), ("relative_humidity", "%")))


def start_of_minute(moment: datetime | None = None) -> datetime:
    return (moment or datetime.now(UTC)).replace(second=0, microsecond=0)


def series(start: datetime, values: Sequence[float], step: timedelta = TEN_MINUTES) -> list[tuple[datetime, float]]:
    return [(start + i * step, float(v)) for i, v in enumerate(values)]


class Process:
    """One engine process: a bus of its own, the warnings service on it, the worker's pipeline
    publishing there, and every ``warning.changed`` / ``alert.sent`` it published."""

    def __init__(self, engine, **options: Any) -> None:
        self.bus = InProcessBus()
        self.pipeline = Pipeline(engine, bus=self.bus, **({"now": options["now"]} if "now" in options else {}))
        self.warnings = WarningService(engine, self.bus, **options)
        self.published: list[Event] = []

        async def seen(event: Event) -> None:
            self.published.append(event)

        self.bus.subscribe(WARNING_CHANGED, seen)
        self.bus.subscribe(ALERT_SENT, seen)

    async def start(self) -> Process:
        await self.warnings.start()
        return self

    async def report(self, stream: int, readings: Sequence[tuple[datetime, float]]) -> None:
        """The station's readings one at a time, stored and published as the worker does."""
        for at, value in readings:
            await self.pipeline.ingest([Reading(stream, at, value)], "test")

    async def report_together(self, streams: Sequence[int], readings: Sequence[tuple[datetime, Sequence[float]]]):
        """A station's streams reporting together (temperature and humidity), one batch per time."""
        for at, values in readings:
            await self.pipeline.ingest([Reading(s, at, v) for s, v in zip(streams, values, strict=True)], "test")

    def alerts_sent(self) -> list[dict[str, Any]]:
        return [e.data for e in self.published if e.type == ALERT_SENT]


async def stored_batch(engine, stream: int, readings: Sequence[tuple[datetime, float]]) -> Event:
    """Store readings as one batch and return the ``observation.stored`` event the worker published."""
    bus, caught = InProcessBus(), []

    async def catch(event: Event) -> None:
        caught.append(event)

    bus.subscribe(OBSERVATION_STORED, catch)
    await Pipeline(engine, bus=bus).ingest([Reading(stream, at, v) for at, v in readings], "test")
    [event] = caught
    return event


def store_only(engine, stream: int, readings: Sequence[tuple[datetime, float]]) -> None:
    """Readings stored and never judged: the worker stored them, the engine died before seeing them
    (or they were imported from an archive)."""
    Pipeline(engine).store([Reading(stream, at, v) for at, v in readings], "test")


def rows(engine) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Every warning and every alert, in id order."""
    with engine.connect() as conn:
        found_warnings = [dict(r._mapping) for r in conn.execute(select(warnings).order_by(warnings.c.id))]
        found_alerts = [dict(r._mapping) for r in conn.execute(select(alerts).order_by(alerts.c.id))]
    return found_warnings, found_alerts


def count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()
