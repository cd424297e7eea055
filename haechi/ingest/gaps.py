"""Readings lost on the way in, per stream: detected from sequence numbers or the expected cadence. Pure.

A broker may still drop a message (its queue full, a crash before it saved): that must show, not
pass in silence. A device that numbers its readings (``"parameters": {"seq": n}``) tells exactly
which are missing; a reading that arrives late fills its hole again, and one at or below the
last number that fills no hole is a redelivery. A count back to 0 or 1 is a restarted device.
Without numbers, a silence longer than ``hole_after_intervals`` of the stream's expected interval
counts the intervals it spans beyond the first as lost (an estimate: a late reading fills nothing).
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

CONFIG = Path(__file__).with_name("data") / "gaps.toml"
#: Missing sequence numbers remembered per stream, so late ones can fill their hole; beyond it a
#: hole still counts, it can no longer be filled (memory stays bounded whatever a device sends).
KEPT_HOLES = 10_000
SEQ = "seq"


def hole_after_intervals(path: Path = CONFIG) -> float:
    return float(tomllib.loads(path.read_text(encoding="utf-8"))["cadence"]["hole_after_intervals"])


@dataclass(slots=True)
class StreamGaps:
    missing: int = 0  # readings believed lost
    last_seq: int | None = None
    last_time: datetime | None = None
    holes: set[int] = field(default_factory=set)


class GapDetector:
    """Per stream: the readings believed lost so far (``missing``), from what arrived."""

    def __init__(self, tolerance: float | None = None) -> None:
        self.tolerance = hole_after_intervals() if tolerance is None else tolerance
        self.streams: dict[int, StreamGaps] = {}

    def observe(self, stream_id: int, time: datetime, parameters: Mapping[str, Any] | None,
                interval_s: float | None) -> None:
        """One reading that arrived; ``interval_s`` is the stream's expected cadence, if known."""
        state = self.streams.setdefault(stream_id, StreamGaps())
        seq = (parameters or {}).get(SEQ)
        if isinstance(seq, int) and not isinstance(seq, bool):
            self._numbered(state, seq)
        elif interval_s:
            self._timed(state, time, interval_s)
        if state.last_time is None or time > state.last_time:
            state.last_time = time

    @property
    def missing(self) -> dict[int, int]:
        """Stream id → readings missing, for the streams with any."""
        return {i: s.missing for i, s in self.streams.items() if s.missing}

    def _numbered(self, state: StreamGaps, seq: int) -> None:
        last = state.last_seq
        if last is None or (seq <= 1 and seq < last and seq not in state.holes):  # first, or a restart
            state.last_seq = seq
        elif seq > last:
            skipped = seq - last - 1
            state.missing += skipped
            room = KEPT_HOLES - len(state.holes)
            state.holes.update(range(last + 1, last + 1 + min(skipped, max(room, 0))))
            state.last_seq = seq
        elif seq in state.holes:  # late, not lost
            state.holes.discard(seq)
            state.missing -= 1

    def _timed(self, state: StreamGaps, time: datetime, interval_s: float) -> None:
        if state.last_time is None or time <= state.last_time:
            return
        silence = (time - state.last_time).total_seconds()
        if silence > self.tolerance * interval_s:
            state.missing += max(round(silence / interval_s) - 1, 1)
