"""MQTT ingest: observations from a broker into the pipeline, acknowledged only once stored.

Topic scheme ``haechi/v1/<datastream-id>/observations``; the payload is one JSON observation
object or a JSON array of them (``parse.py``), ``datastream_id`` coming from the topic.

How nothing is lost (see docs/mqtt.md):

- MQTT 5 with a persistent session (clean start off, a session expiry, a stable client id) and a
  QoS 1 subscription: while Haechi is away the broker keeps its messages.
- Manual acknowledgement: paho's network thread hands each message to the event loop un-acked;
  a batch is stored in one ``Pipeline.ingest`` call and only then PUBACKed. A crash, a broker
  restart or a failed store leaves the messages un-acked, and the broker sends them again after
  the next connect; the store's idempotency key (datastream, phenomenon time) makes that a no-op.
- Unreadable messages (broken JSON, wrong types, non-finite numbers, oversized, a topic without
  a numeric id) go to the dead-letter store with their reason and raw payload, then are acked.
- One message the store cannot take (a poison message) is dead-lettered on its own so it cannot
  block the stream; if even the dead letter cannot be written, the store is down: back off,
  reconnect, and let the broker redeliver.
- Flow control: the broker sends at most Receive Maximum un-acked messages; the rest wait in its
  queue for us (sized by deploy/mosquitto/haechi.conf). Nothing slow runs before the ack: work the
  readings trigger (forecasts) runs off this path, so a store takes milliseconds.
- What a broker may still drop shows: per stream, readings missing by their sequence numbers
  (``parameters.seq``) or their expected cadence (``gaps.py``), on ``/metrics`` and in the room.

The session, the acknowledgement and the reconnecting live in ``mqtt_session.py``, shared with
the care devices' consumer; this module is what is particular to observations.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import Any

import orjson

from haechi.bus.mqtt_session import (
    BrokerAddress,
    Delivery,
    MqttSubscriber,
    SessionStats,
    StoreDown,
    broker_address,
)
from haechi.model.reading import Reading, Rejected

from .gaps import GapDetector
from .parse import readings
from .pipeline import Pipeline

__all__ = [
    "MAX_PAYLOAD_BYTES", "TOPIC_PREFIX", "BrokerAddress", "IngestStats", "MqttIngest", "broker_address",
    "datastream_of", "decode", "message_payload", "observation_topic", "topic_filter",
]

log = logging.getLogger(__name__)

TOPIC_PREFIX = "haechi/v1"
MAX_PAYLOAD_BYTES = 256 * 1024  # one device message; bulk loads belong on HTTP
KEPT_BYTES_OF_OVERSIZED = 4096  # what the dead letter keeps of a payload too big to read
MAX_DATASTREAM_DIGITS = 18  # ids stay inside a signed 64-bit integer, so the database can bind them


# ── topics and payloads (pure) ───────────────────────────────────────────────────────────


def topic_filter(prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/+/observations"


def observation_topic(datastream_id: int, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{datastream_id}/observations"


def datastream_of(topic: str, prefix: str = TOPIC_PREFIX) -> int | None:
    """The datastream id a topic names, or None when its id segment is not a plain number."""
    match = _topic_pattern(prefix).fullmatch(topic)
    return int(match.group(1)) if match else None


@cache
def _topic_pattern(prefix: str) -> re.Pattern[str]:
    return re.compile(rf"{re.escape(prefix)}/(\d{{1,{MAX_DATASTREAM_DIGITS}}})/observations")


def decode(
    topic: str, payload: bytes, prefix: str = TOPIC_PREFIX, max_bytes: int = MAX_PAYLOAD_BYTES
) -> list[Reading | Rejected]:
    """One message's observations, each a Reading or a Rejected with its reason and raw text."""
    if len(payload) > max_bytes:
        kept = _text(payload[:KEPT_BYTES_OF_OVERSIZED])
        return [Rejected(0, f"payload of {len(payload)} bytes exceeds the {max_bytes}-byte limit "
                            f"(first {KEPT_BYTES_OF_OVERSIZED} bytes kept)", "payload", kept)]
    datastream_id = datastream_of(topic, prefix)
    if datastream_id is None:
        return [Rejected(0, f"topic {topic!r} names no datastream; publish to "
                            f"{observation_topic(0, prefix).replace('/0/', '/<datastream id>/')}",
                         "topic", _text(payload))]
    try:
        document = orjson.loads(payload)  # refuses NaN and infinities, as JSON does
    except orjson.JSONDecodeError as exc:
        return [Rejected(0, f"not valid JSON: {exc}", "payload", _text(payload))]
    items = document if isinstance(document, list) else [document]
    return list(readings(items, datastream_id))


def _text(payload: bytes) -> str:
    return payload.decode("utf-8", errors="replace")


# ── the subscriber ───────────────────────────────────────────────────────────────────────


@dataclass
class IngestStats(SessionStats):
    """The session's counters and what became of the observations."""

    stored: int = 0
    duplicates: int = 0
    rejected: int = 0  # observations sent to the dead letters
    poisoned: int = 0  # messages the store refused on their own, dead-lettered


class MqttIngest(MqttSubscriber):
    """Subscribes to ``<prefix>/+/observations`` and stores what arrives, acking after the commit.

    Life cycle, session and backoff as :class:`~haechi.bus.mqtt_session.MqttSubscriber`.
    """

    stats: IngestStats

    def __init__(
        self, url: str, pipeline: Pipeline, *,
        topic_prefix: str = TOPIC_PREFIX,
        client_id: str = "haechi-ingest",
        batch_size: int = 1000,  # larger ones stored less per second and held alerts up (docs/mqtt.md)
        batch_wait: float = 0.01,
        max_payload: int = MAX_PAYLOAD_BYTES,
        session_expiry: int = 7 * 24 * 3600,
        backoff: tuple[float, float] = (0.5, 30.0),
        keepalive: int = 30,
        interval_of: Callable[[int], float | None] = lambda _stream: None,
    ) -> None:
        """``interval_of`` gives a datastream's expected reporting interval in seconds (None when
        unknown): readings of streams without sequence numbers are counted missing against it."""
        if any(c in topic_prefix for c in "+#") or topic_prefix.endswith("/"):
            raise ValueError(f"topic prefix {topic_prefix!r} must be plain levels such as haechi/v1")
        super().__init__(url, topic_filter(topic_prefix), client_id=client_id, batch_size=batch_size,
                         batch_wait=batch_wait, session_expiry=session_expiry, backoff=backoff,
                         keepalive=keepalive, stats=IngestStats())
        self.pipeline = pipeline
        self.topic_prefix, self.max_payload = topic_prefix, max_payload
        self._source = f"mqtt:{self.topic_filter}"
        self.gaps, self.interval_of = GapDetector(), interval_of

    async def handle(self, batch: list[Delivery]) -> None:
        try:
            await self._ingest(batch)
        except Exception:  # whatever the store raised: find the poison message, or the outage
            log.warning("storing a batch of %s MQTT messages failed; trying them one by one", len(batch),
                        exc_info=True)
            await self._store_one_by_one(batch)
            return
        self._ack(batch)

    async def _ingest(self, batch: Sequence[Delivery]) -> None:
        """Readings of the whole batch in one transaction; unreadable payloads kept under their topic."""
        good: list[Reading | Rejected] = []
        unreadable: dict[str, list[Reading | Rejected]] = {}
        for delivery in batch:
            for item in decode(delivery.topic, delivery.payload, self.topic_prefix, self.max_payload):
                if isinstance(item, Reading):
                    good.append(item)
                else:  # its raw text may lack the datastream id: the source keeps the topic
                    unreadable.setdefault(delivery.topic, []).append(item)
        if good:
            self._count(await self.pipeline.ingest(good, self._source))
            for r in good:  # in arrival order: a broker keeps each publisher's order on a topic
                self.gaps.observe(r.datastream_id, r.phenomenon_time, r.parameters, self.interval_of(r.datastream_id))
        for topic, items in unreadable.items():
            self._count(await self.pipeline.ingest(items, f"mqtt:{topic}"))

    async def _store_one_by_one(self, batch: list[Delivery]) -> None:
        for delivery in batch:
            try:
                await self._ingest([delivery])
            except Exception as exc:  # noqa: BLE001 - any refusal makes it a suspect
                await self._keep_poisoned(delivery, exc)
            self._ack([delivery])

    async def _keep_poisoned(self, delivery: Delivery, error: Exception) -> None:
        reason = f"the store refused this message: {type(error).__name__}: {error}"
        try:
            await self.pipeline.ingest([Rejected(0, reason, "payload", _text(delivery.payload))],
                                       f"mqtt:{delivery.topic}")
        except Exception as exc:
            raise StoreDown(f"{type(exc).__name__}: {exc}") from exc
        self.stats.poisoned += 1
        log.error("MQTT message on %s dead-lettered: %s", delivery.topic, reason)

    def _count(self, report) -> None:
        self.stats.stored += report.stored
        self.stats.duplicates += report.duplicates
        self.stats.rejected += len(report.rejected)
        if report.rejected:
            log.warning("%s MQTT observations dead-lettered (first: %s: %s)", len(report.rejected),
                        report.rejected[0].field or "payload", report.rejected[0].reason)


def message_payload(observation: dict[str, Any]) -> bytes:
    """The JSON payload of one observation for ``observation_topic`` (its datastream id is in the topic)."""
    return orjson.dumps({k: v for k, v in observation.items() if k != "datastream_id"})
