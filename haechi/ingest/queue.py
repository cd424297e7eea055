"""Where adapters hand their readings: straight to the pipeline, or to a JetStream queue for workers.

Adapters (HTTP bulk, MQTT, SensorThings, files) call ``await sink.ingest(items, source)`` on a
``Sink`` and acknowledge their own client once it returns. Two sinks keep that promise:

- ``LocalSink`` (the embedded default) stores the batch through the pipeline before returning;
- ``IngestQueue`` (``HAECHI_BUS_URL=nats://…``) returns once JetStream has acknowledged every
  message holding the batch: the readings are durable in the stream, and ``haechi worker``
  processes store them later (``haechi.worker``), each message acknowledged only after its commit.

A message on ``<subject>.<source kind>`` (e.g. ``haechi.ingest.mqtt``) is JSON::

    {"source": "mqtt:haechi/v1/12/observations",
     "readings": [{"datastream_id": 12, "phenomenon_time": "…", "result": 1.2, "unit": "m"}, …],
     "rejected": [{"index": 3, "reason": "…", "field": "result", "raw": "…"}]}

Readings use the documented observation payload (``haechi.ingest.parse``), so a worker validates
them again with the same code; inputs the adapter already refused travel along to the same
dead-letter store the in-process path uses. The stream has work-queue retention: a message is
gone once a worker has acknowledged it.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StorageType, StreamConfig

from haechi.bus.nats import BusUnavailable, connect_nats, ensure_stream
from haechi.core.errors import InvalidInput
from haechi.model.reading import Reading, Rejected

from .parse import reading
from .pipeline import Pipeline, Report

#: Readings per message: well under NATS's default 1 MB payload, large enough to amortise the ack.
CHUNK = 500


@dataclass(frozen=True, slots=True)
class IngestStream:
    """The queue's stream, subject prefix and the durable consumer all workers share.

    ``ack_wait_s``: how long a worker may hold a message without word before it is redelivered
    to another worker (a busy worker reports progress, so this bounds recovery after a crash).
    """

    name: str = "HAECHI_INGEST"
    subject: str = "haechi.ingest"
    durable: str = "haechi-workers"
    ack_wait_s: float = 30.0

    @classmethod
    def of(cls, prefix: str) -> IngestStream:
        """The queue of an installation by its prefix (``HAECHI_BUS_PREFIX``), like its event stream:
        another installation (or a test) on the same NATS must not store this one's readings in
        its own database. "haechi" is :data:`INGEST`."""
        return cls(name=f"{prefix.upper()}_INGEST", subject=f"{prefix}.ingest", durable=f"{prefix}-workers")

    def stream_config(self) -> StreamConfig:
        return StreamConfig(name=self.name, subjects=[f"{self.subject}.>"], retention=RetentionPolicy.WORK_QUEUE,
                            storage=StorageType.FILE)

    def consumer_config(self) -> ConsumerConfig:
        # max_deliver unlimited: a reading waits out a database outage rather than being dropped
        return ConsumerConfig(durable_name=self.durable, ack_policy=AckPolicy.EXPLICIT, ack_wait=self.ack_wait_s,
                              max_deliver=-1, max_ack_pending=-1, filter_subject=f"{self.subject}.>")


INGEST = IngestStream()


# ── the adapters' side ───────────────────────────────────────────────────────────────────


class Sink(Protocol):
    """What an adapter hands readings to; once ``ingest`` returns, the batch will not be lost."""

    #: True when ``ingest`` only queues: its report counts received and rejected, nothing stored yet.
    queued: bool

    async def ingest(self, items: Sequence[Reading | Rejected], source: str) -> Report: ...

    async def close(self) -> None: ...


class LocalSink:
    """The embedded default: the pipeline stores the batch (and publishes it) before returning."""

    queued = False

    def __init__(self, pipeline: Pipeline) -> None:
        self.pipeline = pipeline

    async def ingest(self, items: Sequence[Reading | Rejected], source: str) -> Report:
        return await self.pipeline.ingest(items, source)

    async def close(self) -> None:
        return None


class IngestQueue:
    """The scale-out sink: readings go to JetStream, and ``ingest`` returns once every message is acked."""

    queued = True

    def __init__(self, nc: NatsClient, stream: IngestStream = INGEST, chunk: int = CHUNK,
                 *, owns_connection: bool = False) -> None:
        self.nc, self.js, self.stream, self.chunk = nc, nc.jetstream(), stream, chunk
        self._owns_connection = owns_connection

    @classmethod
    async def connect(cls, url: str, stream: IngestStream = INGEST, chunk: int = CHUNK) -> IngestQueue:
        """Connect to NATS and create the ingest stream if missing."""
        queue = cls(await connect_nats(url, "haechi-ingest"), stream, chunk, owns_connection=True)
        await ensure_stream(queue.js, stream.stream_config())
        return queue

    async def ingest(self, items: Sequence[Reading | Rejected], source: str) -> Report:
        """Queue the batch; the report counts what was received and what the adapter had refused.

        Raises ``BusUnavailable`` (HTTP 503) if any part was not acknowledged: the adapter must
        then not acknowledge its client, whose resend is harmless (writes are idempotent).
        """
        if not items:
            return Report()
        subject = f"{self.stream.subject}.{source_kind(source)}"
        messages = encode_batches(items, source, self.chunk, self.nc.max_payload)
        try:
            await asyncio.gather(*(self.js.publish(subject, m, stream=self.stream.name) for m in messages))
        except (TimeoutError, nats.errors.Error) as exc:
            raise BusUnavailable(f"the ingest queue did not take the batch: {exc!r}") from exc
        return Report(received=len(items), rejected=[i for i in items if isinstance(i, Rejected)])

    async def close(self) -> None:
        if self._owns_connection and not self.nc.is_closed:
            await self.nc.drain()


async def open_sink(pipeline: Pipeline, bus_url: str | None, stream: IngestStream = INGEST) -> Sink:
    """The sink for this process: the queue when a NATS URL is set, else the pipeline itself."""
    if bus_url:
        return await IngestQueue.connect(bus_url, stream)
    return LocalSink(pipeline)


def source_kind(source: str) -> str:
    """The subject token for a source: ``mqtt:haechi/v1/12/observations`` → ``mqtt``."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", source.split(":", 1)[0]) or "unknown"


# ── the message format ───────────────────────────────────────────────────────────────────


def encode_batches(items: Sequence[Reading | Rejected], source: str, chunk: int = CHUNK,
                   max_bytes: int = 1 << 20) -> list[bytes]:
    """The batch as messages of at most ``chunk`` items, each under ``max_bytes`` (halved until it fits)."""
    messages: list[bytes] = []
    for start in range(0, len(items), chunk):
        messages.extend(_fitting(list(items[start:start + chunk]), source, max_bytes))
    return messages


def _fitting(items: list[Reading | Rejected], source: str, max_bytes: int) -> list[bytes]:
    message = encode_batch(items, source)
    if len(message) <= max_bytes:
        return [message]
    if len(items) == 1:  # one reading larger than NATS takes: keep it, cut, as a dead letter
        item = items[0]
        raw = _payload(item) if isinstance(item, Reading) else {"raw": item.raw}
        return [encode_batch([Rejected(item.index if isinstance(item, Rejected) else 0,
                                       f"larger than the queue's {max_bytes}-byte message limit", None,
                                       orjson.dumps(raw).decode()[: max_bytes // 2])], source)]
    half = len(items) // 2
    return _fitting(items[:half], source, max_bytes) + _fitting(items[half:], source, max_bytes)


def encode_batch(items: Sequence[Reading | Rejected], source: str) -> bytes:
    readings = [_payload(i) for i in items if isinstance(i, Reading)]
    rejected = [{"index": i.index, "reason": i.reason, "field": i.field, "raw": i.raw}
                for i in items if isinstance(i, Rejected)]
    return orjson.dumps({"source": source, "readings": readings, "rejected": rejected})


def _payload(item: Reading) -> dict[str, Any]:
    """A reading as the documented observation payload, leaving out what it does not have."""
    payload: dict[str, Any] = {"datastream_id": item.datastream_id,
                               "phenomenon_time": item.phenomenon_time.isoformat(), "result": item.result}
    if item.unit is not None:
        payload["unit"] = item.unit
    if item.result_time is not None:
        payload["result_time"] = item.result_time.isoformat()
    if item.parameters is not None:
        payload["parameters"] = item.parameters
    return payload


def decode_batch(data: bytes, subject: str) -> tuple[str, list[Reading | Rejected]]:
    """(source, items) of one message; whatever cannot be read becomes Rejected, with its raw text.

    Never raises: a message from a foreign or broken publisher still ends in the dead letters.
    """
    fallback = f"nats:{subject}"
    try:
        body = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        return fallback, [_unreadable(f"the message is not valid JSON: {exc}", data)]
    if not isinstance(body, dict) or not isinstance(body.get("readings", []), list) \
            or not isinstance(body.get("rejected", []), list):
        return fallback, [_unreadable("the message must be an object with lists 'readings' and 'rejected'", data)]
    source = body.get("source") if isinstance(body.get("source"), str) else fallback
    items = [_reading_or_rejected(i, obj) for i, obj in enumerate(body.get("readings", []))]
    items += [_carried_rejection(obj) for obj in body.get("rejected", [])]
    return source, items


def _unreadable(reason: str, data: bytes) -> Rejected:
    return Rejected(0, reason, "message", data.decode("utf-8", errors="replace"))


def _reading_or_rejected(index: int, obj: Any) -> Reading | Rejected:
    try:
        return reading(obj)
    except InvalidInput as exc:
        return Rejected(index, exc.detail, exc.field, orjson.dumps(obj).decode())


def _carried_rejection(obj: Any) -> Rejected:
    if isinstance(obj, dict) and isinstance(obj.get("reason"), str) and isinstance(obj.get("raw"), str):
        index = obj.get("index") if isinstance(obj.get("index"), int) else 0
        field = obj.get("field") if isinstance(obj.get("field"), str) else None
        return Rejected(index, obj["reason"], field, obj["raw"])
    return Rejected(0, "a malformed rejection record in the message", "rejected", orjson.dumps(obj).decode())


# ── the workers' side ────────────────────────────────────────────────────────────────────


async def worker_subscription(js: JetStreamContext, stream: IngestStream = INGEST):
    """The pull subscription on the workers' shared durable consumer (stream and consumer made if missing).

    Every worker binds to the same durable, so each message goes to exactly one of them at a time.
    """
    await ensure_stream(js, stream.stream_config())
    for attempt in range(3):
        try:
            return await js.pull_subscribe(f"{stream.subject}.>", durable=stream.durable, stream=stream.name,
                                           config=stream.consumer_config())
        except nats.js.errors.BadRequestError:  # another worker created it at the same moment
            if attempt == 2:
                raise
    raise AssertionError("unreachable")
