"""MQTT ingest on the real Mosquitto: stored, dead-lettered, never acked before the commit, nothing lost.

Each test has its own topic prefix and client ids, and forgets its broker sessions at the end.
Waits are generous timeouts on conditions, never assertions on durations.
"""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import shutil
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson
import paho.mqtt.client as paho
import pytest
from conftest import service_unavailable
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from sqlalchemy import create_engine

from haechi.cities.provision import save_catalogue
from haechi.ingest.mqtt import (
    MAX_PAYLOAD_BYTES,
    BrokerAddress,
    MqttIngest,
    broker_address,
    datastream_of,
    decode,
    observation_topic,
)
from haechi.ingest.pipeline import Pipeline
from haechi.model.reading import Reading, Rejected
from haechi.store import deadletters, sensing

BROKER_HOST, BROKER_PORT = "127.0.0.1", 1883
BROKER_URL = f"mqtt://{BROKER_HOST}:{BROKER_PORT}"
T0 = datetime(2024, 7, 1, 0, 0, tzinfo=UTC)
PATIENCE = 120.0  # seconds a condition may take on a slow CI machine before the test fails


# ── pure parts: no broker ────────────────────────────────────────────────────────────────


def test_topics_name_their_datastream():
    assert datastream_of("haechi/v1/12/observations") == 12
    assert datastream_of("site/a/haechi/v1/7/observations", "site/a/haechi/v1") == 7
    assert datastream_of("haechi/v1/abc/observations") is None
    assert datastream_of("haechi/v1/1e3/observations") is None
    assert datastream_of("haechi/v1/" + "9" * 19 + "/observations") is None  # beyond a 64-bit id
    assert observation_topic(12) == "haechi/v1/12/observations"


def test_broker_urls():
    assert broker_address("mqtt://127.0.0.1") == BrokerAddress("127.0.0.1", 1883)
    assert broker_address("mqtts://user:p%40ss@broker.example:8884") == BrokerAddress(
        "broker.example", 8884, True, "user", "p@ss")
    with pytest.raises(ValueError, match="mqtt://host:1883"):
        broker_address("http://broker")


def test_a_message_decodes_to_readings_with_the_topics_datastream():
    one = decode("haechi/v1/5/observations", b'{"phenomenon_time": "2024-07-01T09:00:00+09:00", "result": 3.1}')
    assert one == [Reading(5, datetime(2024, 7, 1, tzinfo=UTC), 3.1)]
    many = decode("haechi/v1/5/observations", orjson.dumps([
        {"phenomenon_time": "2024-07-01T00:00:00Z", "result": 1},
        {"phenomenon_time": "2024-07-01T00:10:00Z", "result": "high"},
    ]))
    assert isinstance(many[0], Reading) and isinstance(many[1], Rejected)
    assert (many[1].index, many[1].field) == (1, "result")


@pytest.mark.parametrize(("topic", "payload", "field", "reason"), [
    ("haechi/v1/5/observations", b'{"result": 1', "payload", "not valid JSON"),
    ("haechi/v1/5/observations", b'{"phenomenon_time": "2024-07-01T00:00:00Z", "result": NaN}', "payload",
     "not valid JSON"),
    ("haechi/v1/5/observations", b'[{"phenomenon_time": "2024-07-01T00:00:00Z", "result": 1e999}]', "payload",
     "not valid JSON"),
    ("haechi/v1/5/observations", b'"12.5"', None, "must be a JSON object"),
    ("haechi/v1/5/observations", b'{"phenomenon_time": "2024-07-01T00:00:00Z", "result": "12.5"}', "result",
     "must be a number"),
    ("haechi/v1/5/observations", b'{"datastream_id": 6, "phenomenon_time": "2024-07-01T00:00:00Z", "result": 1}',
     "datastream_id", "disagrees with the topic"),
    ("haechi/v1/gauge-7/observations", b'{"phenomenon_time": "2024-07-01T00:00:00Z", "result": 1}', "topic",
     "names no datastream"),
    ("haechi/v1/5/observations", b"\xff\xfe", "payload", "not valid JSON"),
])
def test_unreadable_messages_are_rejected_with_their_reason_and_raw_text(topic, payload, field, reason):
    [rejected] = decode(topic, payload)
    assert isinstance(rejected, Rejected)
    assert rejected.field == field and reason in rejected.reason
    assert rejected.raw


def test_oversized_payloads_are_rejected_keeping_their_beginning():
    payload = b"[" + b" " * MAX_PAYLOAD_BYTES + b"]"
    [rejected] = decode("haechi/v1/5/observations", payload)
    assert "exceeds" in rejected.reason and len(rejected.raw) == 4096


# ── the broker ───────────────────────────────────────────────────────────────────────────


def listening(port: int = BROKER_PORT) -> bool:
    try:
        socket.create_connection((BROKER_HOST, port), timeout=2).close()
        return True
    except OSError:
        return False


def wait_until(condition: Callable[[], bool], what: str, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)


#: The broker configuration shipped for deployments (docs/mqtt.md); private brokers run with it.
SHIPPED_CONFIG = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "haechi.conf"


class PrivateBroker:
    """A Mosquitto of this test's own, on a free port with its sessions kept in a temporary folder,
    so that restarting it disturbs nobody else's tests on the shared broker. It runs the shipped
    configuration (``shipped=False``: Mosquitto's defaults, to show what they lose)."""

    def __init__(self, folder: Path, shipped: bool = True) -> None:
        self.port = free_port()
        self.url = f"mqtt://{BROKER_HOST}:{self.port}"
        self.config = folder / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} {BROKER_HOST}\nallow_anonymous true\n"
            f"persistence true\npersistence_location {folder}/\n"
            f"user {getpass.getuser()}\nlog_dest file {folder / 'mosquitto.log'}\n"
            + (SHIPPED_CONFIG.read_text(encoding="utf-8") if shipped else ""))
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(["mosquitto", "-c", str(self.config)])
        wait_until(lambda: self.process.poll() is not None or listening(self.port), "the private Mosquitto to listen")
        assert self.process.poll() is None, f"the private Mosquitto exited: see {self.config.parent}/mosquitto.log"

    def stop(self) -> None:
        """SIGTERM: Mosquitto saves its sessions and queued messages before it exits."""
        self.process.terminate()
        self.process.wait(PATIENCE)

    def restart(self) -> None:
        self.stop()
        self.start()


def free_port() -> int:
    with socket.socket() as s:
        s.bind((BROKER_HOST, 0))
        return s.getsockname()[1]


@pytest.fixture
def private_broker(tmp_path) -> Iterator[PrivateBroker]:
    if shutil.which("mosquitto") is None:
        service_unavailable("Mosquitto", "no mosquitto program to start a private broker with")
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    if broker.process.poll() is None:
        broker.stop()


@pytest.fixture
def broker() -> str:
    if not listening():
        service_unavailable("Mosquitto", f"nothing listens on {BROKER_HOST}:{BROKER_PORT}")
    return BROKER_URL


@pytest.fixture
def names(broker) -> Iterator[Callable[[str], str]]:
    """Unique client ids per test; their persistent sessions are forgotten at the end."""
    run = uuid.uuid4().hex[:10]
    used: list[str] = []

    def name(role: str) -> str:
        used.append(f"test-{run}-{role}")
        return used[-1]

    name.prefix = f"test/{run}/haechi/v1"
    yield name
    for client_id in used:
        forget_session(client_id)


def forget_session(client_id: str) -> None:
    client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
    try:
        client.connect(BROKER_HOST, BROKER_PORT, clean_start=True)  # session expiry 0: gone on disconnect
        client.loop_start()
        client.disconnect()
        client.loop_stop()
    except OSError:
        pass


class Publisher:
    """A device-like QoS 1 publisher with a persistent session; paho resends what is un-acked on reconnect."""

    def __init__(self, client_id: str, port: int = BROKER_PORT) -> None:
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=paho.MQTTv5)
        self.client.reconnect_delay_set(1, 2)
        self.client.on_publish = self._on_puback
        properties = Properties(PacketTypes.CONNECT)
        properties.SessionExpiryInterval = 300
        self.client.connect(BROKER_HOST, port, clean_start=False, properties=properties)
        self.client.loop_start()
        self.sent = self.acked = 0

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)  # kept and resent by paho while the broker is away
        self.sent += 1

    def _on_puback(self, *_) -> None:  # once per message, whether sent once or again after a reconnect
        self.acked += 1

    def close(self) -> None:
        wait_until(lambda: self.acked == self.sent, "the broker to acknowledge every publish")
        self.client.disconnect()
        self.client.loop_stop()


def observation(minutes: float, result, **extra) -> bytes:
    return orjson.dumps({"phenomenon_time": (T0 + timedelta(minutes=minutes)).isoformat(), "result": result, **extra})


def make_streams(engine, count: int) -> list[int]:
    """``count`` water-level datastreams in metres."""
    with engine.begin() as conn:
        property_id = save_catalogue(conn)["water_level"]
        sensor = sensing.create_sensor(conn, {"name": "gauge"})
        ids = []
        for n in range(count):
            thing = sensing.create_thing(conn, {"name": f"gauge {n}"})
            ids.append(sensing.create_datastream(conn, {
                "name": f"level {n}", "thing_id": thing, "sensor_id": sensor, "observed_property_id": property_id,
                "unit_name": "metre", "unit_symbol": "m", "unit_definition": "ucum:m"}))
        return ids


def stored(engine) -> int:
    with engine.connect() as conn:
        return sensing.count_observations(conn)


def results(engine, stream: int) -> list[float]:
    with engine.connect() as conn:
        return [o["result"] for o in sensing.observations_of(conn, stream, limit=100_000, newest_first=False)]


def letters(engine) -> list[dict]:
    with engine.connect() as conn:
        return deadletters.pending(conn, limit=1000)


async def eventually(condition: Callable[[], bool], what: str, timeout: float = PATIENCE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def subscribed(ingest: MqttIngest) -> AsyncIterator[MqttIngest]:
    """A started subscriber, stopped at the end even when the test fails."""
    await ingest.start()
    try:
        await ingest.wait_subscribed(PATIENCE)
        yield ingest
    finally:
        await ingest.stop()


# ── stored, dead-lettered ────────────────────────────────────────────────────────────────


def test_published_observations_are_stored_with_their_values(sqlite_engine, names):
    first, second = make_streams(sqlite_engine, 2)

    async def scenario():
        async with subscribed(MqttIngest(BROKER_URL, Pipeline(sqlite_engine), topic_prefix=names.prefix,
                                         client_id=names("ingest"))) as ingest:
            publisher = Publisher(names("device"))
            for minute in range(10):  # one object a message, in centimetres: converted to metres
                publisher.publish(observation_topic(first, names.prefix), observation(minute, 300 + minute, unit="cm"))
            for block in range(2):  # arrays of five, with and without the datastream id of the topic
                publisher.publish(observation_topic(second, names.prefix), b"[" + b",".join(
                    observation(10 * block + minute, 2.5 + block, datastream_id=second) for minute in range(5)) + b"]")
            await asyncio.to_thread(publisher.close)
            await eventually(lambda: stored(sqlite_engine) == 20, "20 observations in the store")
            await eventually(lambda: ingest.stats.acked == 12, "every message acknowledged")
        return ingest.stats

    stats = asyncio.run(scenario())
    assert results(sqlite_engine, first) == pytest.approx([3.0 + minute / 100 for minute in range(10)])
    assert results(sqlite_engine, second) == [2.5] * 5 + [3.5] * 5
    assert (stats.stored, stats.rejected, letters(sqlite_engine)) == (20, 0, [])


def test_malformed_messages_go_to_the_dead_letters_and_the_good_ones_are_stored(sqlite_engine, names):
    [stream] = make_streams(sqlite_engine, 1)
    topic = observation_topic(stream, names.prefix)
    bad = [
        (topic, b'{"phenomenon_time": "2024-07-01T00:00:00Z", "result": ', "payload: not valid JSON"),
        (topic, observation(1, "high"), "result: result must be a number (got 'high')"),
        (topic, b'{"phenomenon_time": "2024-07-01T00:02:00Z", "result": NaN}', "payload: not valid JSON"),
        (observation_topic(stream + 1000, names.prefix), observation(3, 1.0),
         f"datastream_id: unknown datastream {stream + 1000}"),
        (f"{names.prefix}/gauge-{stream}/observations", observation(4, 1.0), "topic: topic"),
        (topic, b"[" + b" " * 300_000 + b"]", "payload: payload of 300002 bytes exceeds"),
    ]

    async def scenario():
        async with subscribed(MqttIngest(BROKER_URL, Pipeline(sqlite_engine), topic_prefix=names.prefix,
                                         client_id=names("ingest"))) as ingest:
            publisher = Publisher(names("device"))
            for n in range(200):  # a flood of good readings with the bad ones among them
                publisher.publish(topic, observation(10 + n, 2.0 + n / 1000))
                if n % 30 == 0 and n // 30 < len(bad):
                    bad_topic, payload, _ = bad[n // 30]
                    publisher.publish(bad_topic, payload)
            await asyncio.to_thread(publisher.close)
            await eventually(lambda: len(letters(sqlite_engine)) == len(bad), f"{len(bad)} dead letters")
            await eventually(lambda: ingest.stats.acked == 200 + len(bad), "every message acknowledged")

    asyncio.run(scenario())
    assert len(results(sqlite_engine, stream)) == 200
    kept = letters(sqlite_engine)
    assert len(kept) == len(bad)
    for bad_topic, payload, reason in bad:
        if reason.startswith("datastream_id"):  # refused by the pipeline: its raw text names the datastream
            [letter] = [k for k in kept if k["reason"].startswith(reason)]
            assert letter["source"].startswith("mqtt:") and f'"datastream_id":{stream + 1000}' in letter["payload"]
        else:  # unreadable: kept raw, under its own topic
            [letter] = [k for k in kept if k["reason"].startswith(reason) and k["payload"] == payload.decode()[:4096]]
            assert letter["source"] == f"mqtt:{bad_topic}"


# ── nothing acknowledged before it is stored ─────────────────────────────────────────────


def unreachable_engine(tmp_path):
    """An engine whose every connection fails, as a store that is down does."""
    return create_engine(f"sqlite:///{tmp_path / 'no-such-folder' / 'haechi.db'}")


def test_a_store_that_fails_leaves_the_message_with_the_broker_until_it_works(sqlite_engine, names, tmp_path):
    [stream] = make_streams(sqlite_engine, 1)
    pipeline = Pipeline(unreachable_engine(tmp_path))

    async def scenario():
        async with subscribed(MqttIngest(BROKER_URL, pipeline, topic_prefix=names.prefix,
                                         client_id=names("ingest"), backoff=(0.2, 1.0))) as ingest:
            publisher = Publisher(names("device"))
            publisher.publish(observation_topic(stream, names.prefix), observation(0, 4.25))
            await asyncio.to_thread(publisher.close)
            await eventually(lambda: ingest.stats.store_failures >= 2, "the store to fail twice")
            assert ingest.stats.acked == 0
            pipeline.engine = sqlite_engine  # the database is back
            await eventually(lambda: stored(sqlite_engine) == 1, "the observation in the store")
            await eventually(lambda: ingest.stats.acked == 1, "the acknowledgement")
        return ingest.stats

    stats = asyncio.run(scenario())
    assert stats.redelivered >= 2  # the broker sent it again after each reconnect: it was never acked
    assert results(sqlite_engine, stream) == [4.25] and letters(sqlite_engine) == []


def test_a_subscriber_that_stops_before_storing_leaves_its_messages_to_the_next(sqlite_engine, names, tmp_path):
    [stream] = make_streams(sqlite_engine, 1)
    client_id = names("ingest")

    async def scenario():
        async with subscribed(MqttIngest(BROKER_URL, Pipeline(unreachable_engine(tmp_path)),
                                         topic_prefix=names.prefix, client_id=client_id, backoff=(5.0, 5.0))) as down:
            publisher = Publisher(names("device"))
            for minute in range(5):
                publisher.publish(observation_topic(stream, names.prefix), observation(minute, 1.0 + minute))
            await asyncio.to_thread(publisher.close)
            await eventually(lambda: down.stats.store_failures >= 1, "the store to fail")
        async with subscribed(MqttIngest(BROKER_URL, Pipeline(sqlite_engine), topic_prefix=names.prefix,
                                         client_id=client_id)):
            await eventually(lambda: stored(sqlite_engine) == 5, "the five observations in the store")
        return down.stats

    stats = asyncio.run(scenario())
    assert stats.acked == 0
    assert results(sqlite_engine, stream) == [1.0, 2.0, 3.0, 4.0, 5.0]


class ChokingPipeline(Pipeline):
    """A store that raises on one particular value (a poison message), as a driver error would."""

    POISON = 666.0

    def _store(self, items, source):
        if any(isinstance(i, Reading) and i.result == self.POISON for i in items):
            raise ValueError("the driver cannot bind this value")
        return super()._store(items, source)


def test_a_message_the_store_refuses_is_dead_lettered_and_does_not_block_the_stream(sqlite_engine, names):
    [stream] = make_streams(sqlite_engine, 1)
    topic = observation_topic(stream, names.prefix)

    async def scenario():
        async with subscribed(MqttIngest(BROKER_URL, ChokingPipeline(sqlite_engine), topic_prefix=names.prefix,
                                         client_id=names("ingest"))) as ingest:
            publisher = Publisher(names("device"))
            for minute in range(50):
                publisher.publish(topic, observation(minute, ChokingPipeline.POISON if minute == 20 else 1.0 + minute))
            await asyncio.to_thread(publisher.close)
            await eventually(lambda: ingest.stats.acked == 50, "every message acknowledged")
        return ingest.stats

    stats = asyncio.run(scenario())
    assert stats.poisoned == 1 and len(results(sqlite_engine, stream)) == 49
    [letter] = letters(sqlite_engine)
    assert letter["reason"].startswith("payload: the store refused this message: ValueError")
    assert '"result":666.0' in letter["payload"] and letter["source"] == f"mqtt:{topic}"


# ── a broker restart in the middle of a stream ───────────────────────────────────────────


def test_a_broker_restart_mid_stream_loses_no_observation(sqlite_engine, names, private_broker):
    streams = make_streams(sqlite_engine, 4)
    total, restart_after = 2000, 600
    published = threading.Event()

    def publish_paced(publisher: Publisher) -> None:
        for n in range(total):  # 4 gauges, one reading each per "minute", about 400 messages a second
            stream = streams[n % len(streams)]
            publisher.publish(observation_topic(stream, names.prefix), observation(n // len(streams), 2.0 + n / 10_000))
            time.sleep(0.0025)
        published.set()

    async def scenario():
        async with subscribed(MqttIngest(private_broker.url, Pipeline(sqlite_engine), topic_prefix=names.prefix,
                                         client_id=names("ingest"), backoff=(0.1, 1.0))) as ingest:
            publisher = Publisher(names("device"), private_broker.port)
            sender = threading.Thread(target=publish_paced, args=(publisher,), daemon=True)
            sender.start()
            await eventually(lambda: publisher.sent >= restart_after, f"{restart_after} messages sent")
            await asyncio.to_thread(private_broker.restart)
            restarted_at = publisher.sent
            await asyncio.to_thread(sender.join, PATIENCE)
            await asyncio.to_thread(publisher.close)
            await eventually(lambda: stored(sqlite_engine) == total, f"all {total} observations in the store")
        return restarted_at, ingest.stats

    restarted_at, stats = asyncio.run(scenario())
    assert restarted_at < total and published.is_set()  # the restart fell in the middle of the stream
    assert stats.connects >= 2  # the subscriber came back by itself
    for n, stream in enumerate(streams):
        expected = [2.0 + (minute * len(streams) + n) / 10_000 for minute in range(total // len(streams))]
        assert results(sqlite_engine, stream) == pytest.approx(expected)  # each once, none lost
    assert letters(sqlite_engine) == []
