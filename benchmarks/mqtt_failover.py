"""MQTT failover: from a `kill -9` of the API replica reading MQTT to its standby reading, and caught up.

Set-up: a fresh PostgreSQL database and a NATS prefix of this run's own, a private Mosquitto (the
shipped configuration), two `haechi serve` replicas with ``HAECHI_MQTT_URL`` (one reads, the other
stands by: ``haechi/runtime/one_at_a_time.py``) and one `haechi worker`. A device publishes QoS-1
readings at ``--rate`` over 100 datastreams throughout. Each round kills the reader with SIGKILL
(after 3 s of steady flow) and times, from the signal, (1) the standby reading (its /metrics says
``haechi_mqtt_reading 1``, polled every 50 ms) and (2) caught up: every reading the broker had
acknowledged by the kill is stored. A fresh replica is then started as the next standby. At the
end, every acknowledged reading must be stored: the lost count is printed.

    .venv/bin/python benchmarks/mqtt_failover.py [--rounds 3] [--rate 1000]

PostgreSQL from HAECHI_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test),
NATS from HAECHI_BENCH_NATS_URL (default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import signal
import statistics
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import httpx
import paho.mqtt.client as mqtt
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.alert_latency import NATS_URL, Process, _delete_streams
from benchmarks.common import free_port, make_streams, observation, postgres_database
from benchmarks.ingest_mqtt import BROKER, start_broker
from haechi.bus.nats import EventStream
from haechi.ingest.mqtt import message_payload, observation_topic
from haechi.ingest.queue import IngestStream
from haechi.store import open_db
from haechi.store.schema import observations

STREAMS = 100
STEADY_S = 3.0
WAIT_S = 120.0  # only ever waited on


class Device(threading.Thread):
    """Publishes QoS-1 readings at ``rate`` until stopped; counts what the broker acknowledged."""

    def __init__(self, streams: list[int], rate: float) -> None:
        super().__init__(daemon=True)
        self.streams, self.rate = streams, rate
        self.sent = self.acked = 0
        self.halt = threading.Event()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-device-{uuid.uuid4().hex[:8]}")
        self.client.max_inflight_messages_set(1000)
        self.client.on_publish = self._acked
        self.client.connect(*BROKER)
        self.client.loop_start()

    def _acked(self, *_) -> None:
        self.acked += 1

    def run(self) -> None:
        started = time.perf_counter()
        while not self.halt.is_set():
            reading = observation(self.streams, self.sent)
            self.client.publish(observation_topic(reading["datastream_id"]), message_payload(reading), qos=1)
            self.sent += 1
            ahead = started + self.sent / self.rate - time.perf_counter()
            if ahead > 0:
                time.sleep(ahead)

    def finish(self) -> None:
        self.halt.set()
        self.join()
        _until(lambda: self.acked >= self.sent, "the broker to acknowledge every reading")
        self.client.disconnect()
        self.client.loop_stop()


def reading(port: int) -> float | None:
    """``haechi_mqtt_reading`` of the replica on ``port``; None while it does not answer."""
    with contextlib.suppress(httpx.TransportError):
        found = re.search(r"^haechi_mqtt_reading (\S+)$", httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2).text,
                          re.MULTILINE)
        return float(found.group(1)) if found else None
    return None


def _until(check, what: str, every_s: float = 0.05) -> float:
    """Poll ``check`` until true; returns when (time.monotonic())."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(every_s)
    raise RuntimeError(f"not within {WAIT_S:g} s: {what}")


def rounds(count: int, rate: float, url: str, prefix: str) -> dict:
    db = open_db(url)
    streams = make_streams(db, STREAMS)

    def stored() -> int:
        with db.connect() as conn:
            return conn.execute(select(func.count()).select_from(observations)).scalar_one()

    env = {k: v for k, v in os.environ.items() if not k.startswith("HAECHI_")}
    env |= {"HAECHI_DATABASE_URL": url, "HAECHI_BUS_URL": NATS_URL, "HAECHI_BUS_PREFIX": prefix,
            "HAECHI_MQTT_URL": f"mqtt://{BROKER[0]}:{BROKER[1]}", "PYTHONUNBUFFERED": "1"}
    replicas: dict[int, Process] = {}

    def replica() -> int:
        port = free_port()
        replicas[port] = Process(["serve", "--port", str(port)], env)
        return port

    processes = [Process(["worker"], env)]
    figures = []
    try:
        processes[0].seen("worker consuming")
        first, second = replica(), replica()
        _until(lambda: sorted(map(str, (reading(first), reading(second)))) == ["0.0", "1.0"], "one replica reading")
        reader, standby = (first, second) if reading(first) == 1.0 else (second, first)
        device = Device(streams, rate)
        device.start()
        for n in range(1, count + 1):
            time.sleep(STEADY_S)
            acked_then = device.acked
            killed = time.monotonic()
            replicas[reader].popen.send_signal(signal.SIGKILL)
            replicas[reader].popen.wait()
            reads = _until(lambda s=standby: reading(s) == 1.0, "the standby to read") - killed
            caught_up = _until(lambda a=acked_then: stored() >= a, "the backlog stored", every_s=0.1) - killed
            figures.append((reads, caught_up))
            print(f"round {n}: killed the reader; the standby read after {reads:.2f} s, every reading "
                  f"acknowledged by the kill ({acked_then:,}) stored after {caught_up:.2f} s", flush=True)
            reader, standby = standby, replica()
            _until(lambda s=standby: reading(s) == 0.0, "the new replica to stand by")
        device.finish()
        _until(lambda: stored() >= device.acked, "every acknowledged reading stored", every_s=0.2)
        lost = device.acked - stored()
    finally:
        for process in [*processes, *replicas.values()]:
            process.stop()
        db.dispose()
    reads, caught = [f[0] for f in figures], [f[1] for f in figures]
    return {"rounds": count, "rate_obs_per_s": rate, "acknowledged": device.acked, "lost": lost,
            "standby_reads_s": [round(r, 2) for r in reads], "caught_up_s": [round(c, 2) for c in caught],
            "standby_reads_median_s": round(statistics.median(reads), 2),
            "caught_up_median_s": round(statistics.median(caught), 2)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rate", type=float, default=1000)
    args = parser.parse_args()
    prefix = f"haechi_mqtt_failover_{uuid.uuid4().hex[:8]}"
    with postgres_database("mqtt_failover") as url, tempfile.TemporaryDirectory() as folder:
        broker = start_broker(Path(folder))
        try:
            result = rounds(args.rounds, args.rate, url, prefix)
        finally:
            broker.terminate()
            broker.wait()
            asyncio.run(_delete_streams(EventStream.of(prefix).name, IngestStream.of(prefix).name))
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
