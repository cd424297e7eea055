"""MQTT ingest throughput, and latency from publish to the SSE stream under background load.

1. Throughput: publisher processes send N single-observation QoS-1 messages to the real broker;
   and, to see the subscriber alone, the same N messages queued while the server is down, then
   drained (timed from the server's start, start-up included);
   a `haechi serve` process (embedded SQLite, HAECHI_MQTT_URL set) stores them. Measured from the
   first publish until every observation is in the DB, beside the raw SQLite insert of the same rows.
2. Latency: while a background publisher sends 5,000 observations/s, a probe publishes one
   observation every 50 ms on its own datastream and times its arrival as an `observation` event
   on `/api/v1/stream`. Prints p50 and p99 (target p99 < 100 ms).

    .venv/bin/python benchmarks/ingest_mqtt.py [--n 100000] [--publishers 2] [--probes 200]
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import free_port, fresh_db, make_streams, observations, start_server
from benchmarks.ingest_http import raw_insert

BROKER = ["127.0.0.1", 1883]
#: A private broker sized for load: Mosquitto's default queue of 1,000 messages per client
#: drops QoS-1 messages for a subscriber that falls behind (see docs/mqtt.md).
BROKER_CONF = """listener {port} 127.0.0.1
allow_anonymous true
max_queued_messages 1000000
max_inflight_messages 20000
persistence false
"""


def start_broker(folder: Path) -> subprocess.Popen:
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(BROKER_CONF.format(port=port))
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    BROKER[1] = port
    time.sleep(0.5)
    return broker


def publish(messages: list[tuple[str, bytes]], rate: float | None, ready=None) -> None:
    """Publish QoS-1 messages (at ``rate`` per second if given) and wait for every PUBACK."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    client.connect(*BROKER)
    client.loop_start()
    if ready is not None:
        ready.wait()
    started = time.perf_counter()
    infos = []
    for i, (topic, payload) in enumerate(messages):
        infos.append(client.publish(topic, payload, qos=1))
        if rate:
            lag = started + (i + 1) / rate - time.perf_counter()
            if lag > 0:
                time.sleep(lag)
    for info in infos:
        info.wait_for_publish(60)
    client.loop_stop()
    client.disconnect()


def messages_for(obs: list[dict]) -> list[tuple[str, bytes]]:
    return [(f"haechi/v1/{o['datastream_id']}/observations",
             orjson.dumps({"phenomenon_time": o["phenomenon_time"], "result": o["result"]})) for o in obs]


def serve(folder: Path, streams: int) -> tuple[subprocess.Popen, str, Path]:
    db = folder / "mqtt.db"
    engine = fresh_db(folder, "mqtt.db")
    make_streams(engine, streams)
    engine.dispose()
    server, url = start_server(db, mqtt_url=f"mqtt://127.0.0.1:{BROKER[1]}")
    time.sleep(1.0)  # let the subscriber connect
    return server, url, db


def stored(db: Path) -> int:
    with sqlite3.connect(db, timeout=30) as conn:
        return conn.execute("SELECT count(*) FROM observations").fetchone()[0]


def throughput(n: int, publishers: int) -> dict:
    obs = observations(list(range(1, 1001)), n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw_s = raw_insert(folder, obs)
        server, _, db = serve(folder, 1000)
        try:
            msgs = messages_for(obs)
            share = [msgs[i::publishers] for i in range(publishers)]
            ready = mp.Event()
            procs = [mp.Process(target=publish, args=(part, None, ready)) for part in share]
            for p in procs:
                p.start()
            time.sleep(0.5)
            started = time.perf_counter()
            ready.set()
            while stored(db) < n:
                time.sleep(0.05)
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"only {stored(db)} of {n} stored")
            seconds = time.perf_counter() - started
            for p in procs:
                p.join()
        finally:
            server.terminate()
            server.wait(20)
    return {"observations": n, "publishers": publishers, "raw_sqlite_per_s": round(n / raw_s),
            "mqtt_pipeline_per_s": round(n / seconds), "ratio": round(raw_s / seconds, 2)}


def drain(n: int) -> dict:
    """The subscriber alone: messages queued by the broker for its persistent session while the
    server was down, then drained — no publisher shares the cores while it is timed."""
    obs = observations(list(range(1, 1001)), n)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        raw_s = raw_insert(folder, obs)
        server, _, db = serve(folder, 1000)  # creates the persistent session and its subscription
        server.terminate()
        server.wait(20)
        publish(messages_for(obs), None)  # the broker queues them for the absent subscriber
        env = os.environ | {"HAECHI_DATABASE_URL": f"sqlite:///{db}", "HAECHI_PORT": str(free_port()),
                            "HAECHI_MQTT_URL": f"mqtt://127.0.0.1:{BROKER[1]}"}
        server = subprocess.Popen([sys.executable, "-m", "haechi.cli", "serve"], env=env,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            while (first := stored(db)) == 0:  # the clock starts with the first stored batch,
                time.sleep(0.01)  # so the server's start-up is not counted
            started = time.perf_counter()
            while stored(db) < n:
                time.sleep(0.05)
                if time.perf_counter() - started > 600:
                    raise RuntimeError(f"only {stored(db)} of {n} stored")
            seconds = (time.perf_counter() - started) * n / (n - first)
        finally:
            server.terminate()
            server.wait(20)
    return {"observations": n, "raw_sqlite_per_s": round(n / raw_s),
            "mqtt_subscriber_per_s": round(n / seconds), "ratio": round(raw_s / seconds, 2)}


def latency(probes: int, background_rate: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        server, url, _ = serve(Path(tmp), 1001)
        probe_stream = 1001
        sent: dict[str, float] = {}
        delays: list[float] = []
        done = threading.Event()
        connected = threading.Event()

        def listen():
            with httpx.stream("GET", f"{url}/api/v1/stream?types=observation.>", timeout=None) as response:
                for line in response.iter_lines():
                    connected.set()
                    if line.startswith("data: ") and f'"datastream_id":{probe_stream},' in line:
                        key = orjson.loads(line[6:])["phenomenon_time"]
                        if key in sent:
                            delays.append(time.perf_counter() - sent[key])
                            if len(delays) >= probes:
                                done.set()
                                return

        threading.Thread(target=listen, daemon=True).start()
        connected.wait(10)
        background = mp.Process(target=publish, args=(
            messages_for(observations(list(range(1, 1001)), int(background_rate * (probes * 0.05 + 10)))),
            background_rate))
        background.start()
        time.sleep(2)
        client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="bench-probe")
        client.connect(*BROKER)
        client.loop_start()
        start = datetime(2024, 7, 1, tzinfo=UTC)
        for i in range(probes):
            at = (start + timedelta(minutes=10 * i)).isoformat()
            sent[at] = time.perf_counter()
            client.publish(f"haechi/v1/{probe_stream}/observations",
                           orjson.dumps({"phenomenon_time": at, "result": 3.0}), qos=1)
            time.sleep(0.05)
        done.wait(60)
        client.loop_stop()
        background.terminate()
        server.terminate()
        server.wait(20)
    ms = sorted(d * 1000 for d in delays)
    return {"probes": len(ms), "background_obs_per_s": background_rate,
            "p50_ms": round(statistics.median(ms), 1), "p99_ms": round(ms[int(len(ms) * 0.99) - 1], 1),
            "max_ms": round(ms[-1], 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--probes", type=int, default=200)
    parser.add_argument("--background", type=float, default=5000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        broker = start_broker(Path(tmp))
        try:
            print(json.dumps({"throughput": throughput(args.n, args.publishers), "drain": drain(args.n),
                              "latency": latency(args.probes, args.background)}, indent=2))
        finally:
            broker.terminate()


if __name__ == "__main__":
    main()
