"""The warnings engine: QC-good observations in, warning lifecycle changes out. Pure: no I/O.

For each datastream and hazard, every applicable criterion keeps its window aggregate and how
long its issue condition (and its lifting condition) has held. A level is *qualified* when one of
its criteria has held for its persistence; the stream's warning escalates to the gravest
qualified level at once, and comes down only when every criterion of its current level has met
its lifting rule for the lifting persistence — the hysteresis that stops a value hovering at a
threshold from flapping. A gap in the data resets what has "held": silence never issues and
never lifts. One warning per hazard × area: the area's level is the gravest of its streams', and
only a change of that level is a lifecycle change (issue, update, cancel).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from haechi.core.clock import KST
from haechi.model.apparent import SUMMER_MONTHS, apparent_temperature
from haechi.model.hazards import Change, Criterion

from .windows import DailyMax, aggregator

#: Readings further apart than this many expected intervals break a condition's "held" run.
GAP_INTERVALS = 3
#: Temperature and humidity are paired into an apparent temperature when this close in time.
PAIRING = timedelta(minutes=30)
APPARENT = "apparent_temperature_max"
DERIVED_FROM = frozenset({"air_temperature", "relative_humidity"})  # what the apparent temperature needs


@dataclass(frozen=True, slots=True)
class StreamInfo:
    """What the engine needs to know of a datastream to choose its criteria and its area."""

    id: int
    property: str
    area_code: str | None = None  # the district (or finer) it reports for
    thing_id: int | None = None
    place_kind: str | None = None
    place_ref: str | None = None  # e.g. the gauge's code, for gauge-specific stages
    facility_type: str | None = None
    safety_grade: str | None = None
    interval_s: float = 600.0

    def applies(self, criterion: Criterion) -> bool:
        kind, _, rest = criterion.scope.partition(":")
        if kind == "gauge":
            return self.place_ref == rest
        if kind == "facility":
            ftype, _, grade = rest.partition(":")
            return self.facility_type == ftype and grade in ("*", "", self.safety_grade)
        return kind in ("station", "zone")

    def area(self, criterion: Criterion) -> str:
        """The key of the area a warning from this stream covers."""
        kind = criterion.scope.partition(":")[0]
        if kind == "gauge":
            return criterion.scope
        if kind in ("facility", "zone"):
            return f"{kind}:{self.thing_id if self.thing_id is not None else self.id}"
        if not self.area_code:
            return f"stream:{self.id}"
        # A 2-digit code is a whole city's (시·도): a stream standing for it, such as Seoul's
        # 25-district mean PM10 on which Seoul issues its dust advisories, warns the whole city.
        return f"city:{self.area_code}" if len(self.area_code) == 2 else f"district:{self.area_code[:5]}"


class _Tracker:
    """One criterion on one stream: its aggregate and how long its conditions have held."""

    __slots__ = ("_lifted", "_met", "criterion", "daily", "lift_since", "met_since", "value", "window")

    def __init__(self, criterion: Criterion, window) -> None:
        self.criterion = criterion
        self.window = window  # shared by the stream's criteria with the same window and aggregate
        self.daily = isinstance(self.window, DailyMax)
        self.value: float | None = None
        self.met_since: datetime | None = None
        self.lift_since: datetime | None = None
        self._met, self._lifted = criterion.met, criterion.lifted  # bound once: this is the hot path

    def add(self, time: datetime, value: float) -> None:
        self.value = v = self.window.add(time, value)
        if self.daily:  # judged by calendar days: runs of days, see _days_held
            return
        self.met_since = (self.met_since or time) if self._met(v) else None
        self.lift_since = (self.lift_since or time) if self._lifted(v) else None

    def reset(self) -> None:
        self.met_since = self.lift_since = None

    def qualified(self, now: datetime) -> bool:
        c = self.criterion
        if self.daily:
            return _days_held(self.window, now, c.met, include_today=True) * timedelta(days=1) >= max(
                c.persistence, timedelta(days=1))
        return self.met_since is not None and now - self.met_since + c.window >= c.persistence

    def lift_ok(self, now: datetime) -> bool:
        c = self.criterion
        if self.daily:  # a day counts as lifted only once it is over
            return _days_held(self.window, now, c.lifted, include_today=False) * timedelta(days=1) >= max(
                c.lift_persistence, timedelta(days=1))
        return self.lift_since is not None and now - self.lift_since + c.window >= c.lift_persistence


def _days_held(daily: DailyMax, now: datetime, test: Callable[[float], bool], include_today: bool) -> int:
    """Consecutive calendar days (KST), ending today or yesterday, whose maximum passes ``test``."""
    day = now.astimezone(KST).date()
    if not include_today:
        day -= timedelta(days=1)
    held = 0
    while day in daily.days and test(daily.days[day]):
        held += 1
        day -= timedelta(days=1)
    return held


@dataclass(slots=True)
class _StreamHazard:
    trackers: list[_Tracker]
    active: Criterion | None = None


@dataclass(slots=True)
class _Stream:
    info: StreamInfo
    hazards: dict[str, _StreamHazard]
    last_time: datetime | None = None


@dataclass
class RuleEngine:
    """Feed it observations in time order per stream; it answers with lifecycle changes."""

    criteria: list[Criterion]
    describe: Callable[[int], StreamInfo | None]
    streams: dict[int, _Stream] = field(default_factory=dict)
    areas: dict[tuple[str, str], dict[int, Criterion]] = field(default_factory=lambda: defaultdict(dict))
    by_property: dict[str, list[Criterion]] = field(default_factory=dict)
    _weather: dict[int, dict[str, tuple[datetime, float]]] = field(default_factory=lambda: defaultdict(dict))

    def __post_init__(self) -> None:
        for c in self.criteria:
            self.by_property.setdefault(c.property, []).append(c)

    def observe(self, stream_id: int, time: datetime, value: float, quality: str = "good",
                issued: datetime | None = None) -> list[Change]:
        """Changes caused by one reading. Only QC-good readings count.

        A forecast is judged on the time it is for (``time``), but what it changes is known when it
        was ``issued``: its changes carry that time, and ``time`` as their onset.
        """
        if quality != "good":
            return []
        stream = self._stream(stream_id)
        if stream is None:
            return []
        changes = self._advance(stream, time, value, issued)
        if stream.info.property in DERIVED_FROM and stream.info.thing_id is not None:
            changes += self._apparent(stream.info, time, value)
        return changes

    def watches(self, stream_id: int) -> bool:
        """Whether any criterion can apply to this stream (directly or through apparent temperature)."""
        stream = self._stream(stream_id)
        return stream is not None and (bool(stream.hazards) or stream.info.property in DERIVED_FROM)

    def observe_many(self, readings: Iterable[tuple[int, datetime, float, str, datetime | None]]) -> list[Change]:
        """Changes caused by (stream, time, value, quality, issued) readings, in order."""
        changes: list[Change] = []
        for stream_id, time, value, quality, issued in readings:
            changes += self.observe(stream_id, time, value, quality, issued)
        return changes

    def restore(self, stream_id: int, hazard: str, level: str) -> bool:
        """Take back a warning in force from before a restart, so it can be updated and lifted."""
        stream = self._stream(stream_id)
        state = stream.hazards.get(hazard) if stream else None
        criterion = next((t.criterion for t in state.trackers if t.criterion.level == level), None) if state else None
        if criterion is None:
            return False
        state.active = criterion
        self.areas[(hazard, stream.info.area(criterion))][stream_id] = criterion
        return True

    def settle(self, hazard: str, area: str, stream_id: int | None, level: str | None) -> None:
        """Make the warning of ``hazard`` in ``area`` what the record says: none, or ``level`` from
        ``stream_id``. A new leader replaying history overrides its own view with what was decided."""
        levels = self.areas.get((hazard, area))
        for sid in list(levels or ()):
            state = self.streams[sid].hazards.get(hazard) if sid in self.streams else None
            if state is not None:
                state.active = None
            del levels[sid]
        if stream_id is not None and level is not None:
            self.restore(stream_id, hazard, level)

    def relocate(self, stream_id: int, area_code: str) -> bool:
        """A stream placed since the engine met it reports for ``area_code`` from now on, unless a
        warning of it is in force (that one keeps its area until lifted). True when moved."""
        stream = self.streams.get(stream_id)
        if stream is None or any(h.active is not None for h in stream.hazards.values()):
            return stream is None
        stream.info = replace(stream.info, area_code=area_code)
        return True

    def active(self) -> dict[tuple[str, str], Criterion]:
        """Warnings in force: (hazard, area) → the criterion of their level."""
        return {key: max(levels.values(), key=lambda c: c.rank) for key, levels in self.areas.items() if levels}

    def history_starts(self, decide_from: datetime) -> dict[str, datetime]:
        """Per property observed, the first reading time from which a replay makes this engine decide
        from ``decide_from`` on exactly as one that never stopped (see :func:`history_needed`)."""
        return {prop: _history_start(decide_from - span, daily)
                for prop, (span, daily) in history_needed(self.criteria).items()}

    # ── per stream ──

    def _stream(self, stream_id: int) -> _Stream | None:
        stream = self.streams.get(stream_id)
        if stream is None:
            info = self.describe(stream_id)
            if info is None:
                return None
            stream = self.streams[stream_id] = self._plan(info)
        return stream

    def _plan(self, info: StreamInfo) -> _Stream:
        hazards: dict[str, _StreamHazard] = {}
        windows: dict[tuple[str, timedelta], object] = {}
        for c in self.by_property.get(info.property, ()):
            if info.applies(c):
                key = (c.aggregate, c.window)
                if key not in windows:
                    windows[key] = aggregator(*key)
                hazards.setdefault(c.hazard, _StreamHazard([])).trackers.append(_Tracker(c, windows[key]))
        return _Stream(info, hazards)

    def _advance(self, stream: _Stream, time: datetime, value: float, issued: datetime | None = None) -> list[Change]:
        if stream.last_time is not None:
            if time <= stream.last_time:
                return []  # late readings are stored, but windows move forward only
            if (time - stream.last_time).total_seconds() > GAP_INTERVALS * stream.info.interval_s:
                for hazard in stream.hazards.values():
                    for tracker in hazard.trackers:
                        tracker.reset()
        stream.last_time = time
        changes = []
        for name, hazard in stream.hazards.items():
            for tracker in hazard.trackers:
                tracker.add(time, value)
            level = _next_level(hazard, time)
            if level is not hazard.active:
                hazard.active = level
                change = self._area_change(name, stream, level, time, issued)
                if change:
                    changes.append(change)
        return changes

    def _area_change(self, hazard: str, stream: _Stream, level: Criterion | None, time: datetime,
                     issued: datetime | None) -> Change | None:
        some = level or next(t.criterion for t in stream.hazards[hazard].trackers)
        key = (hazard, stream.info.area(some))
        levels = self.areas[key]
        before = max(levels.values(), key=lambda c: c.rank) if levels else None
        if level is None:
            levels.pop(stream.info.id, None)
        else:
            levels[stream.info.id] = level
        after = max(levels.values(), key=lambda c: c.rank) if levels else None
        if after is before or (after and before and after.level == before.level and after.rank == before.rank):
            return None
        kind = "issue" if before is None else "cancel" if after is None else "update"
        decided = next((t.value for t in stream.hazards[hazard].trackers if t.criterion is (after or before)), None)
        return Change(kind, hazard, key[1], after, before, decided, issued or time, stream.info.id,
                      onset=time if issued else None)

    # ── derived: apparent temperature from temperature and humidity ──

    def _apparent(self, info: StreamInfo, time: datetime, value: float) -> list[Change]:
        pair = self._weather[info.thing_id]
        pair[info.property] = (time, value)
        if len(pair) < 2 or time.astimezone(KST).month not in SUMMER_MONTHS:
            return []
        (t1, ta), (t2, rh) = pair["air_temperature"], pair["relative_humidity"]
        if abs(t1 - t2) > PAIRING or not 0 < rh <= 100:
            return []
        derived_id = -info.thing_id  # one virtual stream per station
        if derived_id not in self.streams:
            self.streams[derived_id] = self._plan(StreamInfo(
                derived_id, APPARENT, info.area_code, info.thing_id, info.place_kind, info.place_ref,
                interval_s=info.interval_s))
        return self._advance(self.streams[derived_id], max(t1, t2), apparent_temperature(ta, rh))


def history_needed(criteria: Iterable[Criterion]) -> dict[str, tuple[timedelta, bool]]:
    """Per property a criterion reads (temperature and humidity for the apparent temperature):
    how much history its decisions depend on, and whether it is judged by calendar days.

    A criterion decides from its window's aggregate and from how long its issue (or lifting)
    condition has held, counted from a run's first reading plus the window. Replayed from ``t0``,
    the aggregate is exact from ``t0 + window`` on, and a run that began earlier is cut to start by
    then: "held for the persistence" comes out the same from ``t0 + window + persistence`` on. So
    ``window + max(persistence, lift persistence)`` is enough. Daily maxima (heat waves) keep whole
    KST days: their replay starts at the midnight before (see :func:`_history_start`).
    """
    need: dict[str, tuple[timedelta, bool]] = {}
    for c in criteria:
        span = c.window + max(c.persistence, c.lift_persistence)
        daily = isinstance(aggregator(c.aggregate, c.window), DailyMax)
        for prop in (DERIVED_FROM if c.property == APPARENT else (c.property,)):
            before, was_daily = need.get(prop, (timedelta(0), False))
            need[prop] = (max(before, span), was_daily or daily)
    return need


def _history_start(start: datetime, daily: bool) -> datetime:
    if not daily:
        return start
    return start.astimezone(KST).replace(hour=0, minute=0, second=0, microsecond=0)


def _next_level(hazard: _StreamHazard, now: datetime) -> Criterion | None:
    """The level in force after this reading: escalate at once, come down only once lifted."""
    if hazard.active is None and not any(t.met_since or t.daily for t in hazard.trackers):
        return None  # the common case: quiet, nothing building up
    qualified = [t.criterion for t in hazard.trackers if t.qualified(now)]
    top = max(qualified, key=lambda c: c.rank, default=None)
    active = hazard.active
    if active is None or (top is not None and top.rank > active.rank):
        return top
    if not _lifted(hazard, active.level, now):
        return active
    # Official practice: a lifted warning becomes the advisory below it (경보 → 주의보), unless
    # that level is lifted too; a lower level that qualifies outright counts as well.
    lower = [t.criterion for t in hazard.trackers if t.criterion.rank < active.rank
             and (t.qualified(now) or not _lifted(hazard, t.criterion.level, now))]
    return max(lower, key=lambda c: c.rank, default=None)


def _lifted(hazard: _StreamHazard, level: str, now: datetime) -> bool:
    """Every criterion of ``level`` has met its lifting rule for its lifting persistence."""
    return all(t.lift_ok(now) for t in hazard.trackers if t.criterion.level == level)
