"""Coalescing work triggered per reading: per key, at most one run per interval, on the latest time. Pure.

A reading may trigger work (a river forecast, a derived value); a stream that reports fast must
not multiply that work. ``Coalescer`` keeps, per key (a datastream), only the newest time offered
and releases it when it lies ``interval`` or more after the key's last run, in the readings' own
time, so a replay at any speed triggers the same runs as the live stream did. What falls inside
the interval is not lost: it is released anyway once it has waited ``linger`` seconds of the
caller's clock (the last reading of a burst still gets its run).
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)


@dataclass(slots=True)
class _Key:
    last_run: datetime | None = None
    pending: datetime | None = None
    waiting_since: float = 0.0


class Coalescer(Generic[K]):
    """Keys with their newest pending time; ``due`` takes those whose run may start now.

    ``now`` arguments are the caller's monotonic clock in seconds (``loop.time()``), used only
    for ``linger``; the interval is measured on the times offered.
    """

    def __init__(self, interval: timedelta, linger: float) -> None:
        self.interval, self.linger = interval, linger
        self._keys: dict[K, _Key] = {}

    def offer(self, key: K, time: datetime, now: float) -> None:
        """A reading of ``key`` at ``time``; older than the key's last run or pending time, it adds nothing."""
        state = self._keys.setdefault(key, _Key())
        if state.last_run is not None and time <= state.last_run:
            return
        if state.pending is None:
            state.pending, state.waiting_since = time, now
        elif time > state.pending:
            state.pending = time

    def due(self, now: float) -> list[tuple[K, datetime]]:
        """The (key, newest time) pairs whose run may start, marked as run."""
        taken = []
        for key, state in self._keys.items():
            if state.pending is not None and self._ready(state, now):
                taken.append((key, state.pending))
                state.last_run, state.pending = state.pending, None
        return taken

    def due_any(self, now: float) -> bool:
        """Whether ``due`` would give anything now (without taking it)."""
        return any(s.pending is not None and self._ready(s, now) for s in self._keys.values())

    def next_linger_end(self) -> float | None:
        """When the earliest pending key is released by ``linger`` (the caller's clock), if any waits."""
        ends = [s.waiting_since + self.linger for s in self._keys.values() if s.pending is not None]
        return min(ends, default=None)

    @property
    def pending(self) -> int:
        return sum(s.pending is not None for s in self._keys.values())

    def _ready(self, state: _Key, now: float) -> bool:
        return (state.last_run is None or state.pending - state.last_run >= self.interval
                or now - state.waiting_since >= self.linger)
