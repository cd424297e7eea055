"""A sensor surge loses nothing over the shipped broker configuration, and what a broker drops shows (issue 17).

Each test starts its own Mosquitto on a free port (``PrivateBroker``): with the configuration in
deploy/mosquitto/haechi.conf, or with Mosquitto's defaults to show what those lose. Counts only.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import uuid

import pytest
from conftest import service_unavailable
from fastapi.testclient import TestClient
from test_mqtt import (
    PrivateBroker,
    Publisher,
    eventually,
    make_streams,
    observation,
    results,
    stored,
    subscribed,
    wait_until,
)

from haechi.api import create_app
from haechi.core.settings import Settings
from haechi.ingest.gaps import GapDetector
from haechi.ingest.mqtt import MqttIngest, observation_topic
from haechi.ingest.pipeline import Pipeline

STREAMS, PER_STREAM = 5, 1000  # 5,000 messages: five times Mosquitto's default queue per client


@pytest.fixture
def brokers(tmp_path):
    if shutil.which("mosquitto") is None:
        service_unavailable("Mosquitto", "no mosquitto program to start a private broker with")
    started: list[PrivateBroker] = []

    def start(shipped: bool = True) -> PrivateBroker:
        folder = tmp_path / f"broker-{len(started)}"
        folder.mkdir()
        started.append(PrivateBroker(folder, shipped))
        started[-1].start()
        return started[-1]

    yield start
    for broker in started:
        if broker.process.poll() is None:
            broker.stop()


def burst_while_away(engine, broker: PrivateBroker) -> tuple[MqttIngest, list[int]]:
    """The ingest subscribes, goes away; a burst of numbered readings comes; it returns, drains, and
    one more reading per stream (published once it is back) shows where the burst ended."""
    streams, run = make_streams(engine, STREAMS), uuid.uuid4().hex[:8]
    prefix = f"surge/{run}/haechi/v1"

    def ingest() -> MqttIngest:
        return MqttIngest(broker.url, Pipeline(engine), topic_prefix=prefix, client_id=f"surge-{run}",
                          backoff=(0.1, 1.0), interval_of=lambda _stream: 60.0)

    def publish(publisher: Publisher, seqs: range) -> None:
        for n in seqs:
            for stream in streams:
                topic = observation_topic(stream, prefix)
                publisher.publish(topic, observation(n, 2.0 + n / 10_000, parameters={"seq": n + 1}))

    async def scenario() -> MqttIngest:
        async with subscribed(ingest()):
            pass  # the session and its subscription now wait at the broker
        publisher = Publisher(f"surge-device-{run}", broker.port)
        await asyncio.to_thread(publish, publisher, range(PER_STREAM))
        await asyncio.to_thread(wait_until, lambda: publisher.acked == publisher.sent, "every publish acknowledged")
        async with subscribed(ingest()) as back:
            await asyncio.to_thread(publish, publisher, range(PER_STREAM, PER_STREAM + 1))
            last = 2.0 + PER_STREAM / 10_000
            await eventually(lambda: all(results(engine, s)[-1:] == [pytest.approx(last)] for s in streams),
                             "the reading published after the burst, on every stream")
        await asyncio.to_thread(publisher.close)
        return back

    return asyncio.run(scenario()), streams


def test_a_burst_while_the_ingest_is_away_is_stored_whole_over_the_shipped_broker_config(sqlite_engine, brokers):
    ingest, _ = burst_while_away(sqlite_engine, brokers())
    assert stored(sqlite_engine) == STREAMS * (PER_STREAM + 1)
    assert ingest.gaps.missing == {}


def test_with_mosquittos_defaults_the_same_burst_loses_readings_and_every_loss_is_counted(sqlite_engine, brokers):
    """What the shipped configuration is for: the default queue of 1,000 messages drops the rest of
    the burst, which the broker had acknowledged to the device. The sequence numbers count each one."""
    ingest, streams = burst_while_away(sqlite_engine, brokers(shipped=False))
    kept = stored(sqlite_engine)
    assert kept < STREAMS * PER_STREAM
    assert sum(ingest.gaps.missing.values()) == STREAMS * (PER_STREAM + 1) - kept
    assert set(ingest.gaps.missing) == set(streams)


def test_gap_detection_without_sequence_numbers_counts_missed_intervals():
    from datetime import UTC, datetime, timedelta

    gaps, t0 = GapDetector(tolerance=1.5), datetime(2024, 7, 1, tzinfo=UTC)
    for minutes in (0, 1, 2, 2.5, 6, 7, 6.5):  # every minute expected: 3, 4 and 5 are missing
        gaps.observe(9, t0 + timedelta(minutes=minutes), None, 60.0)
    assert gaps.missing == {9: 3}


def test_sequence_numbers_tell_lost_late_redelivered_and_restarted():
    from datetime import UTC, datetime

    gaps, t = GapDetector(), datetime(2024, 7, 1, tzinfo=UTC)
    for seq in (1, 2, 5, 2, 3, 9):  # 3 and 4 skipped, 2 redelivered, 3 late, 6-8 skipped
        gaps.observe(1, t, {"seq": seq}, None)
    assert gaps.missing == {1: 4}
    for seq in (0, 1, 2):  # the device restarted its count
        gaps.observe(1, t, {"seq": seq}, None)
    assert gaps.missing == {1: 4}


def publish_with_a_gap(engine, publisher: Publisher, topic: str) -> None:
    """Numbered readings 1, 2 and 4 on ``topic``, once the server stores what arrives: 3 never comes."""
    # until the server's subscription stands, the first reading is published again
    wait_until(lambda: stored(engine) == 1 or publisher.publish(
        topic, observation(1, 2.0, parameters={"seq": 1})), "the first reading stored")
    for seq in (2, 4):
        publisher.publish(topic, observation(seq, 2.0 + seq / 100, parameters={"seq": seq}))
    wait_until(lambda: stored(engine) == 3, "readings 2 and 4 stored")


def publish_the_late_one(engine, publisher: Publisher, topic: str) -> None:
    publisher.publish(topic, observation(3, 2.03, parameters={"seq": 3}))  # late, not lost
    wait_until(lambda: stored(engine) == 4, "reading 3 stored")


def test_a_missing_sequence_number_shows_on_metrics(sqlite_engine, brokers):
    broker = brokers()
    [stream] = make_streams(sqlite_engine, 1)
    app = create_app(sqlite_engine, Settings(mqtt_url=broker.url, river_forecasts=False))
    topic = observation_topic(stream)

    def missing(client: TestClient) -> str | None:
        found = re.search(rf'^haechi_mqtt_missing_readings{{datastream="{stream}"}} (\S+)$',
                          client.get("/metrics").text, re.MULTILINE)
        return found and found.group(1)

    with TestClient(app) as client:
        publisher = Publisher(f"metrics-device-{uuid.uuid4().hex[:8]}", broker.port)
        try:
            publish_with_a_gap(sqlite_engine, publisher, topic)
            assert missing(client) == "1.0"
            assert re.search(r"^haechi_mqtt_streams_with_gaps 1\.0$", client.get("/metrics").text, re.MULTILINE)
            publish_the_late_one(sqlite_engine, publisher, topic)
            assert missing(client) is None
        finally:
            publisher.close()


def test_the_room_shows_readings_lost_on_the_way_in(browser, brokers, tmp_path):
    """A gauge numbers its readings and one never arrives: the situation room's badge says how many
    readings are missing on how many streams, in Korean and English, and names the stream; once the
    late reading comes, the badge goes."""
    from conftest import LiveServer

    from haechi.cities.load import load_city
    from haechi.store import open_db, sensing

    broker = brokers()
    engine = open_db(f"sqlite:///{tmp_path / 'haechi.db'}")
    load_city(engine, "seoul")
    with engine.connect() as conn:
        level = next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == "Hangang Bridge water level")
    topic = observation_topic(level)
    with LiveServer(create_app(engine, Settings(mqtt_url=broker.url, river_forecasts=False))) as server:
        publisher = Publisher(f"room-gauge-{uuid.uuid4().hex[:8]}", broker.port)
        try:
            publish_with_a_gap(engine, publisher, topic)

            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.goto(f"{server.url}/room")
            page.wait_for_selector("#gaps", state="visible", timeout=15_000)
            assert page.inner_text("#gaps") == "수신 누락 · Readings missing: 1 (1 개 스트림)"
            assert page.get_attribute("#gaps", "title") == "Hangang Bridge water level: 1"
            assert page.get_attribute("#gaps", "role") == "status"  # read out by screen readers
            page.click("#lang-toggle")
            assert page.inner_text("#gaps") == "Readings missing · 수신 누락: 1 (1 streams)"

            publish_the_late_one(engine, publisher, topic)
            page.reload()
            page.wait_for_function("document.querySelector('#gaps') && document.querySelector('#gaps').hidden",
                                   timeout=15_000)
            page.close()
        finally:
            publisher.close()
    engine.dispose()
