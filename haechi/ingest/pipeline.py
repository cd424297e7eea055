"""The ingest pipeline: readings → datastream check → unit conversion → QC → store → live state → bus.

Every adapter (MQTT, HTTP bulk, SensorThings, file import) hands readings to ``Pipeline.store``.
A batch is written in one transaction; only after the commit do the live state and the bus see
it, so an adapter may acknowledge its input as soon as ``store`` returns. Readings that cannot
be stored (unknown datastream, a unit that does not convert) go to the dead-letter store with
their reason; bad-quality readings are stored flagged ``bad``, never dropped.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

import anyio.to_thread
import orjson
from sqlalchemy import Engine

from haechi.core.clock import utcnow
from haechi.core.errors import InvalidInput
from haechi.core.events import Bus, Event
from haechi.model.catalogue import QcLimits, catalogue
from haechi.model.events import OBSERVATION_STORED
from haechi.model.reading import Reading, Rejected
from haechi.model.units import converter
from haechi.store import deadletters, sensing

from . import qc
from .state import LiveState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Profile:
    """What ingest knows of a datastream."""

    id: int
    name: str
    property: str
    unit: str
    limits: QcLimits | None  # None for properties outside the catalogue: clock check only
    area_code: str | None
    lon: float | None
    lat: float | None


@dataclass
class Report:
    """What happened to a batch: counts a client can check, and each rejection with its reason."""

    received: int = 0
    stored: int = 0
    duplicates: int = 0
    flags: dict[str, int] = field(default_factory=lambda: {"good": 0, "suspect": 0, "bad": 0})
    rejected: list[Rejected] = field(default_factory=list)

    def add(self, other: Report) -> None:
        self.received += other.received
        self.stored += other.stored
        self.duplicates += other.duplicates
        for flag, n in other.flags.items():
            self.flags[flag] += n
        self.rejected.extend(other.rejected)

    def as_dict(self, max_rejections: int = 1000) -> dict:
        return {
            "received": self.received, "stored": self.stored, "duplicates": self.duplicates,
            "quality": self.flags, "rejected": len(self.rejected),
            "rejections": [{"index": r.index, "field": r.field, "reason": r.reason}
                           for r in self.rejected[:max_rejections]],
        }


class Pipeline:
    def __init__(
        self, engine: Engine, bus: Bus | None = None, state: LiveState | None = None,
        now: Callable[[], datetime] = utcnow, clock: qc.ClockLimits = qc.DEFAULT_CLOCK,
    ) -> None:
        self.engine, self.bus, self.now, self.clock = engine, bus, now, clock
        self.state = state if state is not None else LiveState()
        self.profiles: dict[int, Profile] = {}
        self._lock = threading.Lock()

    # ── set-up ──

    def warm(self) -> None:
        """Load every datastream's profile and the stored live state (at start-up)."""
        with self.engine.connect() as conn:
            self._remember_profiles(sensing.stream_profiles(conn))
            for row in sensing.stream_states(conn):
                memory = qc.StreamMemory(row["qc_time"], row["qc_value"], row["flat_count"])
                self.state.update(row["datastream_id"], row["phenomenon_time"], row["result"],
                                  row["result_quality"], memory)

    def _remember_profiles(self, rows: Sequence[dict]) -> None:
        properties = catalogue()
        for r in rows:
            known = properties.get(r["property"])
            self.profiles[r["id"]] = Profile(
                r["id"], r["name"], r["property"], r["unit_symbol"], known.limits if known else None,
                r["area_code"], r["lon"], r["lat"])

    def forget(self, datastream_ids) -> None:
        """Drop cached profiles of changed or deleted datastreams; they reload on next use."""
        for stream_id in datastream_ids:
            self.profiles.pop(stream_id, None)

    def profile(self, datastream_id: int) -> Profile | None:
        return self._profiles_for([datastream_id]).get(datastream_id)

    def _profiles_for(self, ids) -> dict[int, Profile]:
        missing = {i for i in ids if i not in self.profiles}
        if missing:  # a datastream created since start-up (SensorThings, another process)
            with self.engine.connect() as conn:
                self._remember_profiles(sensing.stream_profiles(conn, sorted(missing)))
        return self.profiles

    # ── the batch ──

    async def ingest(self, items: Sequence[Reading | Rejected], source: str) -> Report:
        """Store a batch (in a worker thread, the event loop stays free), then publish it on the bus."""
        report, rows = await anyio.to_thread.run_sync(self._store, items, source)
        if self.bus is not None and rows and self.bus.wants(OBSERVATION_STORED):
            event = Event(OBSERVATION_STORED, {"source": source, "observations": [
                {"datastream_id": d, "phenomenon_time": t.isoformat(), "result": r, "quality": q}
                for d, t, r, q, *_ in rows]})
            try:
                await self.bus.publish(event)
            except Exception:
                log.exception("stored %d observations from %s but could not publish them", len(rows), source)
        return report

    def store(self, items: Sequence[Reading | Rejected], source: str, *, keep_rejected: bool = True) -> Report:
        """Store a batch without publishing it (command-line imports, replays, tests).

        ``keep_rejected=False`` reports refusals without making dead letters (a replay of one).
        """
        return self._store(items, source, keep_rejected)[0]

    def _store(self, items: Sequence[Reading | Rejected], source: str,
               keep_rejected: bool = True) -> tuple[Report, list[tuple]]:
        with self._lock:  # one batch at a time: QC memory moves in order, SQLite has one writer anyway
            return self._store_locked(items, source, keep_rejected)

    def _store_locked(self, items: Sequence[Reading | Rejected], source: str,
                      keep_rejected: bool) -> tuple[Report, list[tuple]]:
        report = Report(received=len(items))
        now = self.now()
        profiles = self._profiles_for({i.datastream_id for i in items if isinstance(i, Reading)})
        memories: dict[int, qc.StreamMemory] = {}
        rows, newest = [], {}
        for index, item in enumerate(items):
            if isinstance(item, Reading):
                item = self._check(item, index, profiles, memories, now, rows, newest, report)
            if isinstance(item, Rejected):
                report.rejected.append(item)
        newest = {i: self._newer_of_known(i, n) for i, n in newest.items()}
        with self.engine.begin() as conn:
            report.stored = sensing.write_observations(conn, rows, now)
            sensing.save_stream_states(conn, [_state_row(i, n, memories[i], now) for i, n in newest.items()])
            for r in report.rejected if keep_rejected else ():
                deadletters.keep(conn, source, f"{r.field or 'payload'}: {r.reason}", r.raw)
        report.duplicates = len(rows) - report.stored
        for stream_id, (time, result, flag) in newest.items():
            self.state.update(stream_id, time, result, flag, memories[stream_id])
        return report, rows

    def _newer_of_known(self, stream_id: int, arrived: tuple[datetime, float, str]) -> tuple[datetime, float, str]:
        known = self.state.get(stream_id)
        if known is not None and known.phenomenon_time > arrived[0]:
            return known.phenomenon_time, known.result, known.quality
        return arrived

    def _check(self, item: Reading, index, profiles, memories, now, rows, newest, report) -> Reading | Rejected:
        profile = profiles.get(item.datastream_id)
        if profile is None:
            return Rejected(index, f"unknown datastream {item.datastream_id}", "datastream_id", _reading_raw(item))
        value = item.result
        if item.unit is not None and item.unit != profile.unit:
            try:
                value = converter(item.unit, profile.unit)(value)
            except InvalidInput as exc:
                return Rejected(index, exc.detail, "unit", _reading_raw(item))
        memory = memories.get(profile.id)
        if memory is None:
            memory = memories[profile.id] = replace(self.state.memory(profile.id))
        if profile.limits is None:
            reason = qc.check_clock(item.phenomenon_time, now, self.clock)
            flag, reasons = (qc.BAD, [reason]) if reason else (qc.GOOD, [])
        else:
            flag, reasons = qc.step(value, item.phenomenon_time, now, memory, profile.limits, self.clock)
        report.flags[flag] += 1
        rows.append((profile.id, item.phenomenon_time, value, flag, orjson.dumps(reasons).decode() if reasons else None,
                     item.result_time, orjson.dumps(item.parameters).decode() if item.parameters else None))
        known = newest.get(profile.id)
        if known is None or item.phenomenon_time >= known[0]:
            newest[profile.id] = (item.phenomenon_time, value, flag)
        return item


def _state_row(stream_id: int, newest: tuple[datetime, float, str], memory: qc.StreamMemory, now: datetime) -> tuple:
    time, result, flag = newest
    return (stream_id, time, result, flag, memory.last_time, memory.last_value, memory.flat_count, now)


def _reading_raw(item: Reading) -> str:
    return orjson.dumps({
        "datastream_id": item.datastream_id, "phenomenon_time": item.phenomenon_time.isoformat(),
        "result": item.result, "unit": item.unit,
        "result_time": item.result_time.isoformat() if item.result_time else None, "parameters": item.parameters,
    }).decode()
