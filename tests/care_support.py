"""Shared set-up of the care tests: a guardian with a ward, consent, devices and zones; the broker."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import Any

import orjson
from conftest import service_unavailable
from paho.mqtt import publish
from shapely.geometry import box, mapping
from test_channels_support import LOCAL_WEBHOOKS

from haechi.bus.memory import InProcessBus
from haechi.care import repository
from haechi.care.mqtt import CareMqtt
from haechi.care.service import CareService
from haechi.core.clock import utcnow
from haechi.store.access import create_token

BROKER_HOST, BROKER_PORT = "127.0.0.1", 1883
BROKER_URL = f"mqtt://{BROKER_HOST}:{BROKER_PORT}"
PATIENCE = 60.0  # seconds a condition may take on a slow machine before the test fails

SCHOOL = box(127.000, 37.500, 127.002, 37.502)
HOME = box(127.010, 37.510, 127.012, 37.512)
ALWAYS = [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59"}]


def need_broker() -> None:
    try:
        socket.create_connection((BROKER_HOST, BROKER_PORT), timeout=3).close()
    except OSError as exc:
        service_unavailable("Mosquitto at 127.0.0.1:1883", exc)


@dataclass
class Family:
    guardian: dict[str, Any]
    token: str
    ward: dict[str, Any]
    token_name: str = ""
    devices: dict[str, str] = field(default_factory=dict)  # kind -> ref


def family(engine, *, kind: str = "child", alias: str = "민준", language: str = "ko", needs=(),
           devices=("tracker",), zones: bool = True, area_code: str | None = None,
           webhook_url: str | None = None, consent: bool = True) -> Family:
    """A guardian (with a GUARDIAN token), one ward with consent in force, devices and safe zones."""
    tag = uuid.uuid4().hex[:8]
    with engine.begin() as conn:
        token_id, token = create_token(conn, f"guardian-{tag}", "guardian")
        guardian = repository.add_guardian(conn, {"name": f"보호자-{tag}", "token_id": token_id, "language": language,
                                                  "needs": list(needs), "hazards": [], "webhook_url": webhook_url})
        ward = repository.add_ward(conn, {"kind": kind, "alias": alias, "area_code": area_code}, guardian["id"],
                                   "parent")
        if consent:
            repository.add_consent(conn, ward["id"], {
                "consented_by": "김보호", "relation": "parent", "purpose": "위치 확인",
                "granted_at": utcnow() - timedelta(days=2),
                "valid_until": utcnow() + timedelta(days=30), "recorded_by": "test"})
        refs = {}
        for device_kind in devices:
            ref = f"{device_kind}-{tag}"
            repository.add_device(conn, ward["id"], ref, device_kind)
            refs[device_kind] = ref
        if zones:
            repository.add_zone(conn, ward["id"], {"kind": "school", "name": "해치초등학교",
                                                   "geometry": mapping(SCHOOL), "schedule": ALWAYS})
            repository.add_zone(conn, ward["id"], {"kind": "home", "name": "집", "geometry": mapping(HOME),
                                                   "schedule": []})
    return Family(guardian, token, ward, f"guardian-{tag}", refs)


@dataclass
class Running:
    service: CareService
    consumer: CareMqtt
    prefix: str
    seen: list

    async def send(self, device: str, kind: str, payload: Any) -> None:
        body = payload if isinstance(payload, bytes) else orjson.dumps(payload)
        await asyncio.to_thread(publish.single, f"{self.prefix}/{device}/{kind}", body, qos=1,
                                hostname=BROKER_HOST, port=BROKER_PORT)

    async def alert(self, kind: str, ward_id: int | None = None) -> dict[str, Any]:
        """The first stored alert of ``kind`` announced on the bus (for ``ward_id``)."""
        deadline = time.monotonic() + PATIENCE
        while time.monotonic() < deadline:
            for event in self.seen:
                if event.data["kind"] == kind:
                    alert = await asyncio.to_thread(_get_alert, self.service.engine, event.data["alert_id"])
                    if ward_id is None or alert["ward_id"] == ward_id:
                        return alert
            await asyncio.sleep(0.05)
        raise AssertionError(f"no {kind} alert within {PATIENCE}s; seen {[e.data for e in self.seen]}")

    async def handled(self, count: int) -> None:
        deadline = time.monotonic() + PATIENCE
        while self.consumer.handled < count:
            assert time.monotonic() < deadline, f"only {self.consumer.handled} of {count} messages handled"
            await asyncio.sleep(0.05)


def _get_alert(engine, alert_id: int) -> dict[str, Any]:
    with engine.begin() as conn:
        return repository.get_alert(conn, alert_id)


@contextlib.asynccontextmanager
async def running(engine, webhook_policy=LOCAL_WEBHOOKS, session_expiry: int = 0):
    """The care service and its MQTT consumer on a topic prefix of this test's own; webhooks may
    go to receivers on 127.0.0.1 unless ``webhook_policy`` says otherwise. The broker forgets the
    consumer's session when it disconnects, unless ``session_expiry`` (seconds) keeps it."""
    need_broker()
    prefix = f"test-care/{uuid.uuid4().hex[:12]}"
    bus = InProcessBus()
    service = CareService(engine, bus, webhook_policy=webhook_policy)
    await service.start()
    seen: list = []

    async def collect(event) -> None:
        seen.append(event)

    bus.subscribe("care.alert", collect)
    consumer = CareMqtt(BROKER_URL, service, topic_prefix=prefix, client_id=f"test-{prefix[10:]}",
                        session_expiry=session_expiry)
    await consumer.start()
    try:
        await consumer.wait_subscribed(PATIENCE)
        yield Running(service, consumer, prefix, seen)
    finally:
        await consumer.stop()
        await service.stop()


class WebhookReceiver:
    """A local HTTP endpoint standing in for a guardian's messaging gateway; keeps what it got."""

    def __init__(self) -> None:
        received = self.received = []

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                received.append(orjson.loads(self.rfile.read(int(self.headers["Content-Length"]))))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> WebhookReceiver:  # noqa: PYI034
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
