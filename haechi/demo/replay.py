"""Replaying a scenario through the live pipeline: each time step's readings are ingested as if the
stations had just reported them, so QC, the warnings engine, alerts and the live stream all react.

Readings keep their historical times (the charts show the real dates); ``speed`` says how many
scenario seconds pass per real second (0: as fast as the machine goes).
"""

from __future__ import annotations

import asyncio
import bisect
import csv
import tomllib
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select

from haechi.cities.provision import provision_stations
from haechi.core.clock import KST
from haechi.core.errors import InvalidInput, NotFound
from haechi.ingest.queue import Sink
from haechi.model.reading import Reading
from haechi.store.places import save_places
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
    #: Places the scenario needs that a city pack need not have (e.g. the weather stations reported).
    stations: list[dict[str, Any]] = field(default_factory=list)
    #: "cumulative": the file holds published accumulations per station, spread over ``step_minutes``.
    #: "instant": the file holds published values (concentrations, temperatures) at their times,
    #: joined linearly (``interpolate``) and replayed every ``step_minutes`` and at each published time.
    reconstruct: str | None = None
    step_minutes: int = 10
    end_kst: str | None = None
    #: A what-if instead of a replay: the simulation kind (haechi/simulation) and its parameters.
    simulation: str | None = None
    params: dict[str, Any] = field(default_factory=dict)


def scenarios() -> dict[str, Scenario]:
    with open(SCENARIOS / "scenarios.toml", "rb") as f:
        spec = tomllib.load(f)
    return {name: Scenario(name, s["title_ko"], s["title_en"], s["description"], s["source"],
                           SCENARIOS / s.get("file", ""), s.get("time_column", ""), s.get("series", []),
                           s.get("stations", []), s.get("reconstruct"), s.get("step_minutes", 10), s.get("end_kst"),
                           s.get("simulation"), s.get("params", {}))
            for name, s in spec.items()}


def scenario(name: str) -> Scenario:
    known = scenarios()
    if name not in known:
        raise NotFound(f"no scenario {name!r}; known: {', '.join(known)}")
    return known[name]


def install_stations(engine: Engine, chosen: Scenario) -> None:
    """Add the scenario's own stations (idempotent) and give them their datastreams."""
    if not chosen.stations:
        return
    with engine.begin() as conn:
        save_places(conn, chosen.stations)
        provision_stations(conn)


def resolve(engine: Engine, chosen: Scenario) -> dict[str, int]:
    """Each series' datastream id, found by its station (place kind and ref) and property."""
    install_stations(engine, chosen)
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
    if chosen.reconstruct == "cumulative":
        return _spread_steps(chosen, streams, units)
    if chosen.reconstruct == "instant":
        return _instant_steps(chosen, streams, units)
    out = []
    with open(chosen.file, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row[chosen.time_column]).replace(tzinfo=KST)
            out.append((at, [Reading(streams[c], at, float(row[c]), units[c]) for c in streams if row[c] != ""]))
    return out


def _spread_steps(chosen: Scenario, streams: dict[str, int], units: dict[str, str]):
    checkpoints: dict[str, list[tuple[datetime, float]]] = {}
    with open(chosen.file, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row[chosen.time_column]).replace(tzinfo=KST)
            checkpoints.setdefault(row["station"], []).append((at, float(row["cumulative_mm"])))
    step = timedelta(minutes=chosen.step_minutes)
    start = min(points[0][0] for points in checkpoints.values())
    start = start.replace(hour=0, minute=0)  # the day from midnight: the charts show the dry hours too
    end = datetime.fromisoformat(chosen.end_kst).replace(tzinfo=KST) if chosen.end_kst else max(
        points[-1][0] for points in checkpoints.values())
    times = [start + i * step for i in range(1, int((end - start) / step) + 1)]
    per_station = {c: spread(checkpoints[c], times) for c in streams}
    return [(at, [Reading(streams[c], at, per_station[c][i], units[c]) for c in streams])
            for i, at in enumerate(times)]


def spread(points: list[tuple[datetime, float]], times: list[datetime]) -> list[float]:
    """Amounts per step ending at each of ``times``, from accumulations at ``points``.

    Accumulation is linear between two points, flat before the first and after the last: what the
    published figures say, and nothing they do not.
    """
    def total(at: datetime) -> float:
        if at <= points[0][0]:
            return points[0][1]
        for (t0, v0), (t1, v1) in pairwise(points):
            if at <= t1:
                return v0 + (v1 - v0) * ((at - t0) / (t1 - t0))
        return points[-1][1]

    step = times[1] - times[0] if len(times) > 1 else timedelta(0)
    return [round(round(total(at), 2) - round(total(at - step), 2), 2) for at in times]


def _instant_steps(chosen: Scenario, streams: dict[str, int], units: dict[str, str]):
    points: dict[str, list[tuple[datetime, float]]] = {}
    with open(chosen.file, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            at = datetime.fromisoformat(row[chosen.time_column]).replace(tzinfo=KST)
            points.setdefault(row["series"], []).append((at, float(row["value"])))
    for column in streams:
        if column not in points:
            raise InvalidInput(f"{chosen.file.name} has no published values for series {column!r}", field="series")
        points[column].sort()
    end = datetime.fromisoformat(chosen.end_kst).replace(tzinfo=KST) if chosen.end_kst else None
    times = instant_times([points[c] for c in streams], timedelta(minutes=chosen.step_minutes), end)
    per_series = {c: interpolate(points[c], times) for c in streams}
    return [(at, [Reading(streams[c], at, per_series[c][i], units[c]) for c in streams])
            for i, at in enumerate(times)]


def instant_times(series: list[list[tuple[datetime, float]]], step: timedelta,
                  end: datetime | None = None) -> list[datetime]:
    """The replay's times: every ``step`` from the hour of the first published time to the last
    published time (or ``end``), plus every published time itself, so each published value is
    replayed as published and not only approximated between grid steps."""
    published = {t for points in series for t, _ in points}
    first = min(published).replace(minute=0, second=0, microsecond=0)
    last = end or max(published)
    grid = {first + i * step for i in range(int((last - first) / step) + 1)}
    return sorted(t for t in grid | published if first <= t <= last)


def interpolate(points: list[tuple[datetime, float]], times: list[datetime]) -> list[float]:
    """Values at ``times`` from published (time, value) ``points``, sorted by time.

    Linear between two published points, flat before the first and after the last: no peak, dip
    or daily cycle that the published figures do not show.
    """
    at_times = [t for t, _ in points]
    out = []
    for at in times:
        if at <= at_times[0]:
            value = points[0][1]
        elif at >= at_times[-1]:
            value = points[-1][1]
        else:
            i = bisect.bisect_right(at_times, at)  # points[i - 1] <= at < points[i]
            (t0, v0), (t1, v1) = points[i - 1], points[i]
            value = v0 + (v1 - v0) * ((at - t0) / (t1 - t0))
        out.append(round(value, 2))
    return out


async def replay(
    sink: Sink, timeline: list[tuple[datetime, list[Reading]]], speed: float,
    progress: Callable[[datetime, int, int], None] = lambda *_: None,
    settle: Callable[[], Awaitable[None]] | None = None,
) -> int:
    """Ingest each step at its accelerated time; returns the readings sent. ``progress`` hears of
    each step as it starts, so a scenario clock shows the step's time while it is stored.
    ``settle`` is awaited after each step: work the readings trigger off the ingest path (the
    river forecasts) is done before the next step, however fast the replay."""
    sent = 0
    async for index, (at, readings) in _paced(timeline, speed):
        progress(at, index + 1, len(timeline))
        await sink.ingest(readings, "demo")
        if settle is not None:
            await settle()
        sent += len(readings)
    return sent


async def _paced(timeline, speed: float) -> AsyncIterator[tuple[int, tuple[datetime, list[Reading]]]]:
    loop = asyncio.get_running_loop()
    start_real, start_scenario = loop.time(), timeline[0][0] if timeline else None
    for index, step in enumerate(timeline):
        if speed > 0:
            due = start_real + (step[0] - start_scenario).total_seconds() / speed
            await asyncio.sleep(max(0.0, due - loop.time()))
        yield index, step
