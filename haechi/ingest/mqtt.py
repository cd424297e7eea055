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

aiomqtt 2.5.1 cannot acknowledge manually (empicano/aiomqtt#345), hence paho-mqtt 2.2.0 in its
own thread, bridged into asyncio by ``_Inbox``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import orjson
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from .parse import Reading, Rejected, readings
from .pipeline import Pipeline

log = logging.getLogger(__name__)

TOPIC_PREFIX = "haechi/v1"
MAX_PAYLOAD_BYTES = 256 * 1024  # one device message; bulk loads belong on HTTP
KEPT_BYTES_OF_OVERSIZED = 4096  # what the dead letter keeps of a payload too big to read
MAX_DATASTREAM_DIGITS = 18  # ids stay inside a signed 64-bit integer, so the database can bind them


# ── topics and payloads (pure) ───────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    host: str
    port: int
    tls: bool = False
    username: str | None = None
    password: str | None = None


def broker_address(url: str) -> BrokerAddress:
    """``mqtt://[user:password@]host[:port]`` (1883) or ``mqtts://…`` (TLS, 8883)."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"an MQTT broker URL looks like mqtt://host:1883 or mqtts://host:8883, not {url!r}")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        parts.hostname, parts.port or (8883 if tls else 1883), tls,
        unquote(parts.username) if parts.username else None, unquote(parts.password) if parts.password else None)


def topic_filter(prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/+/observations"


def observation_topic(datastream_id: int, prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{datastream_id}/observations"


def datastream_of(topic: str, prefix: str = TOPIC_PREFIX) -> int | None:
    """The datastream id a topic names, or None when its id segment is not a plain number."""
    match = re.fullmatch(rf"{re.escape(prefix)}/(\d{{1,{MAX_DATASTREAM_DIGITS}}})/observations", topic)
    return int(match.group(1)) if match else None


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


# ── the bridge from paho's network thread to the event loop ──────────────────────────────


@dataclass(slots=True)
class Delivery:
    """One PUBLISH as received; ``session`` counts connections, so stale ones are never acked."""

    mid: int
    qos: int
    topic: str
    payload: bytes
    dup: bool
    session: int


class _Inbox:
    """Deliveries handed from the network thread to the event loop, waking it once per burst."""

    def __init__(self) -> None:
        self._items: deque[Delivery] = deque()
        self._lock = threading.Lock()
        self._ready = asyncio.Event()
        self._signalled = False
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def put(self, delivery: Delivery) -> None:
        """Called on the network thread."""
        with self._lock:
            self._items.append(delivery)
            if self._signalled:
                return
            self._signalled = True
        with contextlib.suppress(RuntimeError):  # the loop has closed: un-acked, the broker keeps it
            self._loop.call_soon_threadsafe(self._ready.set)

    def wake(self) -> None:
        """Called on the event loop, to end a wait (stopping)."""
        self._ready.set()

    async def take(self, limit: int, linger: float) -> list[Delivery]:
        """Up to ``limit`` deliveries: waits for the first, then at most ``linger`` seconds for more."""
        await self._ready.wait()
        batch = self._pop(limit)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + linger
        while batch and len(batch) < limit and (left := deadline - loop.time()) > 0:
            try:
                await asyncio.wait_for(self._ready.wait(), left)
            except TimeoutError:
                break
            batch += self._pop(limit - len(batch))
        return batch

    def _pop(self, limit: int) -> list[Delivery]:
        with self._lock:
            batch = [self._items.popleft() for _ in range(min(limit, len(self._items)))]
            if not self._items:
                self._signalled = False
                self._ready.clear()
            return batch


# ── the subscriber ───────────────────────────────────────────────────────────────────────


@dataclass
class IngestStats:
    """Counters since start, for metrics and tests."""

    messages: int = 0  # deliveries taken into a batch
    redelivered: int = 0  # of which the broker flagged DUP (sent again after a reconnect)
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0  # observations sent to the dead letters
    poisoned: int = 0  # messages the store refused on their own, dead-lettered
    acked: int = 0
    store_failures: int = 0  # batches left un-acked because the store was down
    connects: int = 0


class _StoreDown(Exception):
    """The store takes nothing, not even a dead letter."""


class MqttIngest:
    """Subscribes to ``<prefix>/+/observations`` and stores what arrives, acking after the commit.

    ``await start()`` returns at once (the broker may be down; it keeps trying); ``await stop()``
    finishes the batch in hand, then disconnects. One client id per running subscriber: the
    broker keeps that id's session, and two processes sharing one would push each other off.
    """

    def __init__(
        self, url: str, pipeline: Pipeline, *,
        topic_prefix: str = TOPIC_PREFIX,
        client_id: str = "haechi-ingest",
        batch_size: int = 5000,
        batch_wait: float = 0.01,
        max_payload: int = MAX_PAYLOAD_BYTES,
        session_expiry: int = 7 * 24 * 3600,
        backoff: tuple[float, float] = (0.5, 30.0),
        keepalive: int = 30,
    ) -> None:
        """``batch_wait`` and ``backoff`` (first, cap) in seconds; ``session_expiry`` in seconds:
        how long the broker keeps our messages while we are away."""
        if any(c in topic_prefix for c in "+#") or topic_prefix.endswith("/"):
            raise ValueError(f"topic prefix {topic_prefix!r} must be plain levels such as haechi/v1")
        self.address = broker_address(url)
        self.pipeline = pipeline
        self.topic_prefix, self.client_id = topic_prefix, client_id
        self.batch_size, self.batch_wait, self.max_payload = batch_size, batch_wait, max_payload
        self.session_expiry, self.backoff, self.keepalive = session_expiry, backoff, keepalive
        self.stats = IngestStats()
        self._source = f"mqtt:{topic_filter(topic_prefix)}"
        self._inbox = _Inbox()
        self._session = 0  # bumped on the network thread at each CONNACK
        self._subscribed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._client: paho.Client | None = None
        self._leaving = False
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    # ── life cycle ──

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox.bind(self._loop)
        self._connect()
        self._task = asyncio.create_task(self._drain(), name=f"mqtt-ingest:{self.client_id}")
        self._task.add_done_callback(_log_crash)

    async def wait_subscribed(self, timeout: float = 30.0) -> None:
        """Until the first subscription is confirmed by the broker (``timeout`` in seconds)."""
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def stop(self, grace: float = 10.0) -> None:
        """Finish the batch in hand (up to ``grace`` seconds), then disconnect; the rest stays with the broker."""
        self._stopping.set()
        self._inbox.wake()
        if self._task is not None:
            done, _ = await asyncio.wait({self._task}, timeout=grace)
            if not done:
                self._task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._task
        if self._client is not None:
            await asyncio.to_thread(self._disconnect)

    # ── the network thread (paho callbacks) ──

    def _connect(self) -> None:
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv5, manual_ack=True)
        if self.address.tls:
            client.tls_set()
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        client.reconnect_delay_set(self.backoff[0], self.backoff[1])
        client.on_connect, client.on_connect_fail = self._on_connect, self._on_connect_fail
        client.on_disconnect, client.on_subscribe = self._on_disconnect, self._on_subscribe
        client.on_message = self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.session_expiry
        # Room for a full batch being stored while the next one arrives.
        properties.ReceiveMaximum = min(2 * self.batch_size, 65535)
        client.connect_async(self.address.host, self.address.port, self.keepalive,
                             clean_start=False, properties=properties)
        self._client = client
        client.loop_start()  # connects, and reconnects with capped exponential backoff

    def _disconnect(self) -> None:
        self._leaving = True  # a disconnect of our own is no lost connection
        self._client.disconnect()  # sent after any PUBACKs already queued
        self._client.loop_stop()
        self._leaving = False

    def _on_connect(self, client: paho.Client, _userdata, flags, reason, _properties) -> None:
        if reason.is_failure:
            log.warning("MQTT broker %s:%s refused %s: %s", self.address.host, self.address.port,
                        self.client_id, reason)
            return
        self._session += 1
        self.stats.connects += 1
        log.info("MQTT connected to %s:%s as %s (session %s); subscribing to %s", self.address.host,
                 self.address.port, self.client_id, "resumed" if flags.session_present else "new",
                 topic_filter(self.topic_prefix))
        client.subscribe(topic_filter(self.topic_prefix), options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _client, _userdata, _mid, reasons, _properties) -> None:
        if any(r.is_failure for r in reasons):
            log.error("MQTT broker refused the subscription to %s: %s", topic_filter(self.topic_prefix), reasons)
            return
        self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_connect_fail(self, _client, _userdata) -> None:
        log.warning("MQTT broker %s:%s unreachable; retrying with backoff up to %ss",
                    self.address.host, self.address.port, self.backoff[1])

    def _on_disconnect(self, _client, _userdata, _flags, reason, _properties) -> None:
        if not self._leaving:
            log.warning("MQTT connection lost (%s); reconnecting with backoff up to %ss; "
                        "un-acked messages will come again", reason, self.backoff[1])

    def _on_message(self, _client, _userdata, message: paho.MQTTMessage) -> None:
        self._inbox.put(Delivery(message.mid, message.qos, message.topic, message.payload,
                                 bool(message.dup), self._session))

    # ── the event loop: batch, store, ack ──

    async def _drain(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            batch = [d for d in await self._inbox.take(self.batch_size, self.batch_wait)
                     if d.session == self._session]  # older connections' messages come again
            if not batch:
                continue
            try:
                await self._store(batch)
                failures = 0
            except _StoreDown as exc:
                failures += 1
                await self._recover(failures, exc)

    async def _store(self, batch: list[Delivery]) -> None:
        self.stats.messages += len(batch)
        self.stats.redelivered += sum(d.dup for d in batch)
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
            raise _StoreDown(f"{type(exc).__name__}: {exc}") from exc
        self.stats.poisoned += 1
        log.error("MQTT message on %s dead-lettered: %s", delivery.topic, reason)

    def _count(self, report) -> None:
        self.stats.stored += report.stored
        self.stats.duplicates += report.duplicates
        self.stats.rejected += len(report.rejected)
        if report.rejected:
            log.warning("%s MQTT observations dead-lettered (first: %s: %s)", len(report.rejected),
                        report.rejected[0].field or "payload", report.rejected[0].reason)

    def _ack(self, deliveries: Sequence[Delivery]) -> None:
        session = self._session
        for delivery in deliveries:
            if delivery.qos and delivery.session == session:  # a new connection resends the rest
                self._client.ack(delivery.mid, delivery.qos)
                self.stats.acked += 1

    async def _recover(self, failures: int, error: _StoreDown) -> None:
        """The store is down: keep nothing in hand; after a pause, reconnect so the broker resends."""
        self.stats.store_failures += 1
        delay = min(self.backoff[0] * 2 ** (failures - 1), self.backoff[1])
        log.error("the store is down (%s); MQTT messages stay un-acked with the broker; "
                  "reconnecting in %.1fs", error, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if not self._stopping.is_set():
            await asyncio.to_thread(self._reconnect)

    def _reconnect(self) -> None:
        self._disconnect()
        self._connect()


def _log_crash(task: asyncio.Task) -> None:
    if not task.cancelled() and task.exception() is not None:
        log.error("MQTT ingest stopped: nothing more is stored or acked until restart", exc_info=task.exception())


def message_payload(observation: dict[str, Any]) -> bytes:
    """The JSON payload of one observation for ``observation_topic`` (its datastream id is in the topic)."""
    return orjson.dumps({k: v for k, v in observation.items() if k != "datastream_id"})
