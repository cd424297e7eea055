"""The care devices' MQTT consumer: ``<prefix>/<device>/position|activity|sos``, acked once handled.

The session is the sensing ingest's (``haechi/ingest/mqtt_session.py``): paho-mqtt in its own
network thread, MQTT 5 persistent session, QoS 1 and manual acknowledgement, so a report is acked
only after it is stored (or kept as a dead letter); if the store fails the message stays with the
broker, and the consumer reconnects after a backoff so that the broker sends it again.
"""

from __future__ import annotations

import logging

from haechi.bus.mqtt_session import Delivery, MqttSubscriber, StoreDown
from haechi.core.clock import utcnow

from .reports import decode_message
from .service import CareService

log = logging.getLogger(__name__)

TOPIC_PREFIX = "haechi/care"


def care_topic(device: str, kind: str = "position", prefix: str = TOPIC_PREFIX) -> str:
    return f"{prefix}/{device}/{kind}"


class CareMqtt(MqttSubscriber):
    """Subscribes to ``<prefix>/+/+`` and hands batches of reports to the care service."""

    def __init__(self, url: str, service: CareService, *, topic_prefix: str = TOPIC_PREFIX,
                 client_id: str = "haechi-care", batch_size: int = 2000, batch_wait: float = 0.01,
                 session_expiry: int = 24 * 3600, backoff: tuple[float, float] = (0.5, 30.0)) -> None:
        super().__init__(url, f"{topic_prefix}/+/+", client_id=client_id, batch_size=batch_size,
                         batch_wait=batch_wait, session_expiry=session_expiry, backoff=backoff)
        self.service, self.topic_prefix = service, topic_prefix
        self.handled = 0  # messages stored or dead-lettered

    async def handle(self, batch: list[Delivery]) -> None:
        now = utcnow()
        by_source: dict[str, list] = {}
        for d in batch:
            items = decode_message(d.topic, d.payload, self.topic_prefix, now, self.service.max_future_s)
            by_source.setdefault(_source(d.topic, self.topic_prefix), []).extend(items)
        try:  # one transaction for the batch: acked whole, or redelivered whole and stored once
            await self.service.report_groups([(items, source) for source, items in by_source.items()], now)
        except Exception as exc:
            log.exception("storing %s care reports failed; left with the broker", len(batch))
            raise StoreDown(f"{type(exc).__name__}: {exc}") from exc
        self.handled += len(batch)
        self._ack(batch)


def _source(topic: str, prefix: str) -> str:
    """Dead-letter source: the topic kind, never the device id (kept in the payload when known)."""
    return f"mqtt:{prefix}/+/{topic.rpartition('/')[2]}"
