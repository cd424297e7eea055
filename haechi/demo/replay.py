"""Replaying a scenario through the live pipeline: each time step's readings are ingested as if the
stations had just reported them, so QC, the warnings engine, alerts and the live stream all react.

Readings keep their historical times (the charts show the real dates); ``speed`` says how many
scenario seconds pass per real second (0: as fast as the machine goes).
"""

from __future__ import annotations

import asyncio
import csv
import tomllib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from haechi.core.clock import KST
from haechi.core.errors import InvalidInput, NotFound
from haechi.ingest.parse import Reading
from haechi.ingest.queue import Sink
from haechi.store.schema import datastreams, observed_properties, places, things

SCENARIOS = Path(__file__).with_name("scenarios")


@dataclass(frozen=True)
class Scenario:
    name: str
    title_ko: str
    title_en: str
    description: str
    source: str
    file: Path
    time_column: str
    series: list[dict[str, Any]]


def scenarios() -> dict[str, Scenario]:
    with open(SCENARIOS / "scenarios.toml", "rb") as f:
        spec = tomllib.load(f)
    return {name: Scenario(name, s["title_ko"], s["title_en"], s["description"], s["source"],
                           SCENARIOS / s["file"], s["time_column"], s["series"]) for name, s in spec.items()}


def scenario(name: str) -> Scenario:
    known = scenarios()
    if name not in known:
        raise NotFound(f"no scenario {name!r}; known: {', '.join(known)}")
    return known[name]


def resolve(engine: Engine, chosen: Scenario) -> dict[str, int]:
    """Each series' datastream id, found by its station (place kind and ref) and property."""
    ds, op, th, pl = datastreams.c, observed_properties.c, things.c, places.c
    query = (select(pl.kind, pl.ref, op.code, ds.id)
             .join(things, th.place_id == pl.id).join(datastreams, ds.thing_id == th.id)
             .join(observed_properties, op.id == ds.observed_property_id))
    with engine.connect() as conn:
        ids = {(k, r, p): i for k, r, p, i in conn.execute(query)}
    found = {}
    for s in chosen.series:
        key = (s["place_kind"], s["place_ref"], s["property"])
        if key not in ids:
            raise InvalidInput(f"the loaded city has no {s['property']} datastream at {s['place_kind']} "
                               f"{s['place_ref']}: load the Seoul pack first")
        found[s["column"]] = ids[key]
    return found


def steps(chosen: Scenario, streams: dict[str, int]) -> list[tuple[datetime, list[Reading]]]:
    """The scenario's readings, grouped by time step, oldest first."""
    units = {s["column"]: s["unit"] for s in chosen.series}
    out = []
    with open(chosen.file, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row[chosen.time_column]).replace(tzinfo=KST)
            out.append((at, [Reading(streams[c], at, float(row[c]), units[c]) for c in streams if row[c] != ""]))
    return out


async def replay(
    sink: Sink, timeline: list[tuple[datetime, list[Reading]]], speed: float,
    progress: Callable[[datetime, int, int], None] = lambda *_: None,
) -> int:
    """Ingest each step at its accelerated time; returns the readings sent."""
    sent = 0
    async for index, (at, readings) in _paced(timeline, speed):
        await sink.ingest(readings, "demo")
        sent += len(readings)
        progress(at, index + 1, len(timeline))
    return sent


async def _paced(timeline, speed: float) -> AsyncIterator[tuple[int, tuple[datetime, list[Reading]]]]:
    loop = asyncio.get_running_loop()
    start_real, start_scenario = loop.time(), timeline[0][0] if timeline else None
    for index, step in enumerate(timeline):
        if speed > 0:
            due = start_real + (step[0] - start_scenario).total_seconds() / speed
            await asyncio.sleep(max(0.0, due - loop.time()))
        yield index, step
