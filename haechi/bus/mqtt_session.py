"""The MQTT subscriber both consumers share: a persistent session, QoS 1, acked only once handled.

``MqttSubscriber`` connects paho-mqtt 2.2.0 in its own network thread, with MQTT 5, a persistent
session (clean start off, a session expiry, a stable client id) and a QoS 1 subscription, so the
broker keeps messages while the subscriber is away. Acknowledgement is manual: each PUBLISH is
handed to the event loop un-acked through an ``Inbox``, batched, and given to the subclass's
``handle``, which acks what it has stored. When the store is down ``handle`` raises
``StoreDown``: nothing in hand is acked, and after a capped exponential backoff the subscriber
reconnects, because an MQTT 5 broker sends un-acked messages again only on a new connection.

aiomqtt 2.5.1 cannot acknowledge manually (empicano/aiomqtt#345), hence paho in a thread.
Used by the sensing ingest (``mqtt.py``) and the care devices' consumer (``haechi/care/mqtt.py``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from . import paho_speedup

log = logging.getLogger(__name__)

MAX_RECEIVE = 65535  # the largest Receive Maximum MQTT 5 allows


# ── the broker's address (pure) ──────────────────────────────────────────────────────────


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


class Inbox:
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
class SessionStats:
    """Counters since start, for metrics and tests."""

    messages: int = 0  # deliveries taken into a batch
    redelivered: int = 0  # of which the broker flagged DUP (sent again after a reconnect)
    acked: int = 0
    store_failures: int = 0  # batches left un-acked because the store was down
    connects: int = 0


class StoreDown(Exception):
    """The store takes nothing: leave the batch un-acked with the broker and reconnect later."""


class MqttSubscriber:
    """Subscribes to one topic filter and hands batches to :meth:`handle`, acking after the commit.

    ``await start()`` returns at once (the broker may be down; it keeps trying); ``await stop()``
    finishes the batch in hand, then disconnects. One client id per running subscriber: the
    broker keeps that id's session, and two processes sharing one would push each other off.
    ``batch_wait`` and ``backoff`` (first, cap) are in seconds; so is ``session_expiry``: how long
    the broker keeps our messages while we are away.
    """

    def __init__(
        self, url: str, topic_filter: str, *,
        client_id: str,
        batch_size: int,
        batch_wait: float,
        session_expiry: int,
        backoff: tuple[float, float] = (0.5, 30.0),
        keepalive: int = 30,
        stats: SessionStats | None = None,
    ) -> None:
        paho_speedup.install()  # paho's MQTT 5 properties cost a fifth of the ingest's CPU
        self.address = broker_address(url)
        self.topic_filter, self.client_id = topic_filter, client_id
        self.batch_size, self.batch_wait = batch_size, batch_wait
        self.session_expiry, self.backoff, self.keepalive = session_expiry, backoff, keepalive
        self.stats = stats or SessionStats()
        self._inbox = Inbox()
        self._session = 0  # bumped on the network thread at each CONNACK
        self._subscribed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._client: paho.Client | None = None
        self._leaving = False
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def handle(self, batch: list[Delivery]) -> None:
        """Store ``batch``, then :meth:`_ack` what is stored; raise ``StoreDown`` to keep the rest."""
        raise NotImplementedError

    # ── life cycle ──

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox.bind(self._loop)
        self._connect()
        self._task = asyncio.create_task(self._drain(), name=f"{type(self).__name__}:{self.client_id}")
        self._task.add_done_callback(self._log_crash)

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
        properties.ReceiveMaximum = min(2 * self.batch_size, MAX_RECEIVE)
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
                 self.topic_filter)
        client.subscribe(self.topic_filter, options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _client, _userdata, _mid, reasons, _properties) -> None:
        if any(r.is_failure for r in reasons):
            log.error("MQTT broker refused the subscription to %s: %s", self.topic_filter, reasons)
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

    # ── the event loop: batch, handle, ack ──

    async def _drain(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            batch = [d for d in await self._inbox.take(self.batch_size, self.batch_wait)
                     if d.session == self._session]  # older connections' messages come again
            if not batch:
                continue
            self.stats.messages += len(batch)
            self.stats.redelivered += sum(d.dup for d in batch)
            try:
                await self.handle(batch)
                failures = 0
            except StoreDown as exc:
                failures += 1
                await self._recover(failures, exc)

    def _ack(self, deliveries: Sequence[Delivery]) -> None:
        session = self._session
        for delivery in deliveries:
            if delivery.qos and delivery.session == session:  # a new connection resends the rest
                self._client.ack(delivery.mid, delivery.qos)
                self.stats.acked += 1

    async def _recover(self, failures: int, error: StoreDown) -> None:
        """The store is down: keep nothing in hand; after a pause, reconnect so the broker resends."""
        self.stats.store_failures += 1
        delay = min(self.backoff[0] * 2 ** (failures - 1), self.backoff[1])
        log.error("the store is down (%s); MQTT messages of %s stay un-acked with the broker; "
                  "reconnecting in %.1fs", error, self.client_id, delay)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stopping.wait(), delay)
        if not self._stopping.is_set():
            await asyncio.to_thread(self._reconnect)

    def _reconnect(self) -> None:
        self._disconnect()
        self._connect()

    def _log_crash(self, task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            log.error("MQTT subscriber %s stopped: nothing more is stored or acked until restart",
                      self.client_id, exc_info=task.exception())
