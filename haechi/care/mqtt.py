"""The care devices' MQTT consumer: ``<prefix>/<device>/position|activity|sos``, acked once handled.

Like the sensing ingest (``haechi/ingest/mqtt.py``): paho-mqtt in its own network thread, MQTT 5
persistent session, QoS 1 and manual acknowledgement, so a report is acked only after it is stored
(or kept as a dead letter); if the store fails the message stays with the broker and comes again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.subscribeoptions import SubscribeOptions

from haechi.core.clock import utcnow
from haechi.ingest.mqtt import Delivery, _Inbox, broker_address

from .reports import decode_message
from .service import CareService

log = logging.getLogger(__name__)

TOPIC_PREFIX = "haechi/care"


def care_topic(device: str, kind: str = "position", prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{device}/{kind}"


class CareMqtt:
    """Subscribes to ``<prefix>/+/+`` and hands batches of reports to the care service."""

    def __init__(self, url: str, service: CareService, *, topic_prefix: str = TOPIC_PREFIX,
                 client_id: str = "haechi-care", batch_size: int = 2000, batch_wait: float = 0.01,
                 session_expiry: int = 24 * 3600) -> None:
        self.address = broker_address(url)
        self.service, self.topic_prefix, self.client_id = service, topic_prefix, client_id
        self.batch_size, self.batch_wait, self.session_expiry = batch_size, batch_wait, session_expiry
        self.handled = 0
        self._inbox = _Inbox()
        self._session = 0
        self._subscribed = asyncio.Event()
        self._stopping = asyncio.Event()
        self._client: paho.Client | None = None
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._inbox.bind(self._loop)
        client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=self.client_id,
                             protocol=paho.MQTTv5, manual_ack=True)
        if self.address.tls:
            client.tls_set()
        if self.address.username:
            client.username_pw_set(self.address.username, self.address.password)
        client.reconnect_delay_set(0.5, 30)
        client.on_connect, client.on_subscribe, client.on_message = self._on_connect, self._on_subscribe, self._on_message
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = self.session_expiry
        client.connect_async(self.address.host, self.address.port, 30, clean_start=False, properties=properties)
        self._client = client
        client.loop_start()
        self._task = asyncio.create_task(self._drain(), name=f"care-mqtt:{self.client_id}")

    async def wait_subscribed(self, timeout: float = 30.0) -> None:
        await asyncio.wait_for(self._subscribed.wait(), timeout)

    async def stop(self, grace: float = 10.0) -> None:
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

    def _disconnect(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()

    # paho's network thread

    def _on_connect(self, client, _userdata, _flags, reason, _properties) -> None:
        if reason.is_failure:
            log.warning("MQTT broker refused %s: %s", self.client_id, reason)
            return
        self._session += 1
        client.subscribe(f"{self.topic_prefix}/+/+", options=SubscribeOptions(qos=1))

    def _on_subscribe(self, _client, _userdata, _mid, reasons, _properties) -> None:
        if not any(r.is_failure for r in reasons):
            self._loop.call_soon_threadsafe(self._subscribed.set)

    def _on_message(self, _client, _userdata, message) -> None:
        self._inbox.put(Delivery(message.mid, message.qos, message.topic, message.payload,
                                 bool(message.dup), self._session))

    # the event loop

    async def _drain(self) -> None:
        while not self._stopping.is_set():
            batch = [d for d in await self._inbox.take(self.batch_size, self.batch_wait) if d.session == self._session]
            if not batch:
                continue
            now = utcnow()
            by_topic: dict[str, list] = {}
            for d in batch:
                items = decode_message(d.topic, d.payload, self.topic_prefix, now, self.service.max_future_s)
                by_topic.setdefault(_source(d.topic, self.topic_prefix), []).extend(items)
            try:
                for source, items in by_topic.items():
                    await self.service.report(items, source, now)
            except Exception:
                # Un-acked: the broker sends them again after the next connect.
                log.exception("storing %s care reports failed; left with the broker", len(batch))
                await asyncio.sleep(1.0)
                continue
            self.handled += len(batch)
            for d in batch:
                if d.qos and d.session == self._session:
                    self._client.ack(d.mid, d.qos)


def _source(topic: str, prefix: str) -> str:
    """Dead-letter source: the topic kind, never the device id (kept in the payload when known)."""
    return f"mqtt:{prefix}/+/{topic.rpartition('/')[2]}"
