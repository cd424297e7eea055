"""Aggregates of a stream over a window, updated one reading at a time (amortised O(1)).

Trailing windows (``(t - window, t]``) serve means and sums (hourly mean dust, 3 h and 12 h
rain); calendar-day windows in KST serve daily maxima (heat waves are judged by the day's
highest apparent temperature). ``latest`` is the reading itself (river stages).
"""

from __future__ import annotations

from collections import deque
from datetime import date, datetime, timedelta

from haechi.core.clock import KST


class Latest:
    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: float | None = None

    def add(self, time: datetime, value: float) -> float:
        self.value = value
        return value


class Trailing:
    """Sum, mean or max over the trailing ``window``: readings older than ``time - window`` drop out."""

    __slots__ = ("_at", "_result", "kind", "readings", "total", "window")

    def __init__(self, window: timedelta, kind: str) -> None:
        self.window, self.kind = window, kind
        self.readings: deque[tuple[datetime, float]] = deque()
        self.total = 0.0
        self._at: datetime | None = None
        self._result = 0.0

    def add(self, time: datetime, value: float) -> float:
        """The aggregate with this reading in. The same reading offered again — by another
        criterion sharing this window (the 3 h rain sum of advisory and warning) — counts once."""
        if time != self._at:
            self._at, self._result = time, self._add(time, value)
        return self._result

    def _add(self, time: datetime, value: float) -> float:
        readings = self.readings
        readings.append((time, value))
        self.total += value
        start = time - self.window
        while readings[0][0] <= start and len(readings) > 1:
            self.total -= readings.popleft()[1]
        # Rounded so a running total's binary drift cannot decide "at the threshold" (60 mm is 60 mm).
        if self.kind == "sum":
            return round(self.total, 9)
        if self.kind == "mean":
            return round(self.total / len(readings), 9)
        return max(v for _, v in readings)


class DailyMax:
    """The maximum so far of the calendar day (KST) of each reading, and of the days before."""

    __slots__ = ("days",)

    def __init__(self) -> None:
        self.days: dict[date, float] = {}

    def add(self, time: datetime, value: float) -> float:
        day = time.astimezone(KST).date()
        best = self.days.get(day)
        if best is None or value > best:
            self.days[day] = best = value
        if len(self.days) > 16:  # keep two weeks: enough for any persistence in days
            del self.days[min(self.days)]
        return best


def aggregator(kind: str, window: timedelta):
    if kind == "latest" or window <= timedelta(0):
        return Latest()
    if kind == "max" and window == timedelta(days=1):
        return DailyMax()
    return Trailing(window, kind)
