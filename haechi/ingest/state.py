"""Live state: the newest reading of every datastream, in memory, for the dashboard and QC."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from .qc import StreamMemory


@dataclass(slots=True)
class StreamState:
    """The newest reading of one datastream as people see it, and QC's memory of the stream."""

    phenomenon_time: datetime
    result: float
    quality: str
    memory: StreamMemory = field(default_factory=StreamMemory)


class LiveState:
    """Datastream id → StreamState. Small by design: 100,000 streams fit in tens of megabytes."""

    def __init__(self) -> None:
        self.streams: dict[int, StreamState] = {}
        self.silent: set[int] = set()  # streams already announced as silent

    def get(self, datastream_id: int) -> StreamState | None:
        return self.streams.get(datastream_id)

    def memory(self, datastream_id: int) -> StreamMemory:
        state = self.streams.get(datastream_id)
        return state.memory if state else StreamMemory()

    def update(self, datastream_id: int, time: datetime, result: float, quality: str, memory: StreamMemory) -> None:
        """Keep the newer of what is known and what arrived; QC memory is always the newest."""
        state = self.streams.get(datastream_id)
        if state is None:
            self.streams[datastream_id] = StreamState(time, result, quality, memory)
            return
        if time >= state.phenomenon_time:
            state.phenomenon_time, state.result, state.quality = time, result, quality
        state.memory = memory
        self.silent.discard(datastream_id)

    def show(self, datastream_id: int, time: datetime, result: float, quality: str) -> None:
        """Update what people see, without QC memory (another process ran QC: scale-out mode)."""
        state = self.streams.get(datastream_id)
        if state is None:
            self.streams[datastream_id] = StreamState(time, result, quality)
        elif time >= state.phenomenon_time:
            state.phenomenon_time, state.result, state.quality = time, result, quality
        self.silent.discard(datastream_id)

    def __len__(self) -> int:
        return len(self.streams)
