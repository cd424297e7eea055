"""Gap detection over the live state: which datastreams have fallen silent since the last look."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from . import qc
from .state import LiveState

#: Readings missed before a stream counts as silent (the expected interval is per property).
MISSED_INTERVALS = 3
DEFAULT_INTERVAL_S = 600.0


def newly_silent(state: LiveState, intervals: Mapping[int, float], now: datetime) -> list[int]:
    """Streams silent for ``MISSED_INTERVALS`` expected intervals and not yet announced.

    Marks them announced in ``state.silent``; a new reading clears the mark (``LiveState.update``).
    """
    streams = ((i, s.phenomenon_time, intervals.get(i, DEFAULT_INTERVAL_S)) for i, s in state.streams.items())
    found = [i for i in qc.silent(streams, now, MISSED_INTERVALS) if i not in state.silent]
    state.silent.update(found)
    return found
