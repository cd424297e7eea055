"""MQTT on every API replica, read by one at a time: a `kill -9` of the reader hands its broker
session to a standby, and every reading the broker acknowledged is stored once.

Two `haechi serve` replicas with a bus and ``HAECHI_MQTT_URL``, and a `haechi worker`, on a
PostgreSQL database and a NATS prefix of this test's own, with a private Mosquitto running the
shipped configuration. One replica holds the MQTT ingest's lock and reads; the other stands by
(``haechi/runtime/one_at_a_time.py``). A device publishes numbered readings; the reader is killed
while readings are in flight and the device goes on publishing, so some wait un-acked in the dead
reader's hands and the rest in its session at the broker. The standby takes the lock, resumes that
session under the same client id, and the worker stores them all.
"""

from __future__ import annotations

import re
import shutil
import uuid

import httpx
import pytest
from cluster_support import PATIENCE_S, cluster_of_own, free_port, until
from conftest import service_unavailable
from sqlalchemy import select
from test_mqtt import PrivateBroker, Publisher, make_streams, observation, stored

from haechi.ingest.mqtt import observation_topic
from haechi.store.schema import observations

pytestmark = pytest.mark.postgres

BEFORE, AFTER = 200, 200  # readings published before the kill (not waited for) and after it


@pytest.fixture
def broker(tmp_path):
    if shutil.which("mosquitto") is None:
        service_unavailable("Mosquitto", "no mosquitto program to start a private broker with")
    broker = PrivateBroker(tmp_path)
    broker.start()
    yield broker
    broker.stop()


def test_a_kill_9_of_the_replica_reading_mqtt_hands_its_broker_session_to_the_standby(broker):
    with cluster_of_own() as cluster:
        [stream] = make_streams(cluster.db, 1)
        apis = {port: cluster.run("serve", "--port", str(port), mqtt_url=broker.url)
                for port in (free_port(), free_port())}
        cluster.run("worker").wait_for("worker consuming")
        reader, standby = _reader_and_standby(list(apis))

        device = Publisher(f"device-{uuid.uuid4().hex[:8]}", broker.port)
        publish = lambda n: device.publish(observation_topic(stream), observation(n, 1.0 + n / 1000,
                                                                                    parameters={"seq": n + 1}))
        for n in range(BEFORE):
            publish(n)
        until(lambda: stored(cluster.db) > 0)  # the reader is at work
        apis[reader].kill_9()
        for n in range(BEFORE, BEFORE + AFTER):
            publish(n)
        device.close()  # the broker acknowledged every one

        until(lambda: _reading(standby) == 1.0)  # it took the lock over
        # What came after the kill reached no connected subscriber: the standby has it only by
        # resuming the dead reader's session, under the same client id.
        until(lambda: stored(cluster.db) == BEFORE + AFTER, PATIENCE_S)
        with cluster.db.connect() as conn:
            results = conn.execute(select(observations.c.result).where(observations.c.datastream_id == stream)
                                   .order_by(observations.c.phenomenon_time)).scalars().all()
        assert results == [1.0 + n / 1000 for n in range(BEFORE + AFTER)]  # each once, none lost


def _reader_and_standby(ports: list[int]) -> tuple[int, int]:
    """(the replica that reads MQTT, the one that stands by), once both say so on /metrics."""
    def settled() -> dict[int, float] | None:
        shown = {port: _reading(port) for port in ports}
        return shown if sorted(shown.values()) == [0.0, 1.0] else None

    shown = until(settled)
    return next(p for p in ports if shown[p] == 1.0), next(p for p in ports if shown[p] == 0.0)


def _reading(port: int) -> float:
    """``haechi_mqtt_reading`` of the replica on ``port`` (1 reads, 0 stands by), once it answers."""
    def shown() -> tuple[float] | None:  # in a tuple: 0.0 is an answer too
        try:
            text = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=5).text
        except httpx.TransportError:
            return None
        found = re.search(r"^haechi_mqtt_reading (\S+)$", text, re.MULTILINE)
        return (float(found.group(1)),) if found else None

    return until(shown)[0]
