"""Quality control of single observations: pure functions over a reading and its stream's memory.

Each check returns the reason it fails, or None. ``assess`` combines them into a flag:
``bad`` (impossible: out of physical range, or a clock that cannot be right) never feeds warnings;
``suspect`` (a spike or a stuck sensor) is shown but treated with care; otherwise ``good``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from haechi.model.catalogue import QcLimits

GOOD, SUSPECT, BAD = "good", "suspect", "bad"
NO_REASONS: list[str] = []  # shared by every good reading; never mutated

#: Clock sanity (a device's clock, not the physics): readings from the future beyond this skew,
#: or older than this age, are refused as bad. Tunable per deployment through ``ClockLimits``.
@dataclass(frozen=True, slots=True)
class ClockLimits:
    max_future: timedelta = timedelta(minutes=5)
    max_age: timedelta = timedelta(days=366 * 30)  # backfills of decades of history are welcome


DEFAULT_CLOCK = ClockLimits()


@dataclass(slots=True)
class StreamMemory:
    """What QC remembers of a datastream: its newest reading and how long it has been flat."""

    last_time: datetime | None = None
    last_value: float | None = None
    flat_count: int = 0  # readings in a row equal to last_value


def check_range(value: float, limits: QcLimits) -> str | None:
    if not limits.min <= value <= limits.max:
        return f"out of range: {value:g} not in [{limits.min:g}, {limits.max:g}]"
    return None


def check_clock(time: datetime, now: datetime, clock: ClockLimits) -> str | None:
    if time > now + clock.max_future:
        return f"timestamp {time.isoformat()} is in the future"
    if time < now - clock.max_age:
        return f"timestamp {time.isoformat()} is implausibly old"
    return None


def check_spike(value: float, time: datetime, memory: StreamMemory, limits: QcLimits) -> str | None:
    if memory.last_value is None or memory.last_time is None or time <= memory.last_time:
        return None
    minutes = max((time - memory.last_time).total_seconds() / 60, 1.0)  # readings a second apart count as one minute
    rate = abs(value - memory.last_value) / minutes
    if rate > limits.max_rate_per_min:
        return f"spike: {rate:g} per minute exceeds {limits.max_rate_per_min:g}"
    return None


def check_stuck(value: float, memory: StreamMemory, limits: QcLimits) -> str | None:
    if limits.stuck_count and _is_flat(value, memory, limits) and memory.flat_count + 1 >= limits.stuck_count:
        return f"stuck: the same value {value:g} {memory.flat_count + 1} times in a row"
    return None


def _is_flat(value: float, memory: StreamMemory, limits: QcLimits) -> bool:
    return memory.last_value is not None and abs(value - memory.last_value) <= limits.stuck_tolerance


def assess(
    value: float, time: datetime, now: datetime, memory: StreamMemory, limits: QcLimits,
    clock: ClockLimits = DEFAULT_CLOCK,
) -> tuple[str, list[str]]:
    """(flag, reasons) for one reading. Does not change ``memory``; see ``step``."""
    bad = [r for r in (check_range(value, limits), check_clock(time, now, clock)) if r]
    if bad:
        return BAD, bad
    suspect = [r for r in (check_spike(value, time, memory, limits), check_stuck(value, memory, limits)) if r]
    return (SUSPECT, suspect) if suspect else (GOOD, [])


def step(
    value: float, time: datetime, now: datetime, memory: StreamMemory, limits: QcLimits,
    clock: ClockLimits = DEFAULT_CLOCK,
) -> tuple[str, list[str]]:
    """Assess one reading and move the stream's memory past it, as ingest does in arrival order.

    Bad, late and spiking readings do not move the memory: the next reading is judged against
    the last plausible one. A real step change therefore heals by itself once enough time has
    passed for the rate to be plausible. (The ingest hot path: one pass, no lists when good.)
    """
    range_error, clock_error = check_range(value, limits), check_clock(time, now, clock)
    if range_error or clock_error:
        return BAD, [r for r in (range_error, clock_error) if r]
    spike, stuck = check_spike(value, time, memory, limits), check_stuck(value, memory, limits)
    if not spike and (memory.last_time is None or time > memory.last_time):
        memory.flat_count = memory.flat_count + 1 if _is_flat(value, memory, limits) else 1
        memory.last_time, memory.last_value = time, value
    if spike or stuck:
        return SUSPECT, [r for r in (spike, stuck) if r]
    return GOOD, NO_REASONS


def silent(
    streams: Iterable[tuple[int, datetime | None, float]], now: datetime, missed_intervals: int = 3
) -> Iterator[int]:
    """Ids of streams whose last reading is older than ``missed_intervals`` expected intervals.

    ``streams`` yields (datastream id, time of its newest reading, expected interval in seconds).
    """
    for stream_id, last_time, interval_s in streams:
        if last_time is not None and (now - last_time).total_seconds() > missed_intervals * interval_s:
            yield stream_id
