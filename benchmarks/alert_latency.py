"""Latency from the MQTT publish of a threshold-crossing observation to its CAP alert on the SSE stream.

Single process (the default): a fresh SQLite DB with the Seoul pack loaded (its Han River gauge
datastreams) and 1,000 extra bench datastreams; a private Mosquitto; a `haechi serve` process with
HAECHI_MQTT_URL, running every role (no bus).

Cluster (``--cluster``, measured after the single process in the same run, each with a broker of
its own): a fresh PostgreSQL database with the same pack and streams; a NATS prefix of its own;
one `haechi serve` API replica (HAECHI_BUS_URL, HAECHI_MQTT_URL: it queues what it hears on the
JetStream ingest queue), one `haechi engine` and ``--workers`` `haechi worker`s. The reading goes
MQTT → API → ingest queue → worker → PostgreSQL → ``observation.stored`` on NATS → engine →
alert stored, ``alert.sent`` on NATS → the API's SSE stream. One worker by default: two could store
a cycle's readings out of order (each holds its own message), which the probe must not depend on.

In both, background publisher processes (two by default) send 5,000 observations/s over the bench datastreams
throughout, over MQTT like the probe. Probe cycle on "Hangang Bridge water level" (flood advisory
at 8.5 m, lifted below 8.2 m held 1 h): publish 8.6 m at phenomenon time t, timed until its
`alert.sent` event (msg_type Alert) arrives on `/api/v1/stream?types=alert.>`; then 8.0 m at
t+10 … t+70 min, which lifts it (a Cancel alert, awaited but not timed); the next cycle starts at
t+80 min. Phenomenon times start 30 days ago (QC's clock check) and never move faster than the
0.5 m/min spike limit. One warm-up cycle is not counted.

    .venv/bin/python benchmarks/alert_latency.py [--cycles 50] [--background 5000] [--publishers 2]
        [--over mqtt|mqtt-light|http] [--cluster [--workers 1]]

PostgreSQL from HAECHI_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test),
NATS from HAECHI_BENCH_NATS_URL (default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import multiprocessing as mp
import os
import queue
import socket
import sqlite3
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt
from sqlalchemy import func, select

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import free_port, fresh_db, make_streams, observation, postgres_database, start_server
from benchmarks.ingest_mqtt import BROKER, messages_for, start_broker, stored
from haechi.bus.nats import EventStream, connect_nats
from haechi.cities.load import load_city
from haechi.ingest.queue import IngestStream
from haechi.model.events import ALERT_SENT
from haechi.store import access, open_db, sensing
from haechi.store import cluster as members
from haechi.store.schema import alerts
from haechi.store.schema import observations as observations_table

ROOT = Path(__file__).resolve().parents[1]
NATS_URL = os.environ.get("HAECHI_BENCH_NATS_URL", "nats://127.0.0.1:4222")
GAUGE = "Hangang Bridge water level"
ISSUE_M, CALM_M = 8.6, 8.0  # advisory 8.5 m; lifted below 8.2 m held 1 h
CALM_READINGS = 7  # t+10 … t+70 min: below 8.2 m from t+10, lifted (held 1 h) at t+60
CYCLE = timedelta(minutes=80)
WAIT_S = 30.0
START_S = 120.0  # a process start on a busy machine; only ever waited on
#: Background queued for this many seconds a cycle (plus a margin): a cycle takes about a second in
#: one process, a few through the cluster. Whether it was still running at the end is reported.
SECONDS_PER_CYCLE = {"single": 2, "cluster": 5}


@dataclass
class System:
    """What the probe needs of a running Haechi: where its API is and how to count what it stored."""

    url: str
    gauge: int
    bench: list[int]
    stored: Callable[[], int]
    alerts: Callable[[], dict[str, int]]
    auth: dict[str, str]  # a device token's header, for HTTP uploads
    lag: Callable[[], int | None] = lambda: None


def prepare(engine, extra: int) -> tuple[int, list[int], dict[str, str]]:
    """The Seoul pack plus ``extra`` bench datastreams and a device token.
    Returns (gauge stream, bench streams, the token's Authorization header)."""
    load_city(engine, "seoul")
    with engine.begin() as conn:
        profiles = sensing.stream_profiles(conn)
        _, token = access.create_token(conn, "bench gateway", "device")
    gauge = next(p["id"] for p in profiles if p["name"] == GAUGE)
    before = {p["id"] for p in profiles}
    bench = [i for i in make_streams(engine, extra) if i not in before]
    return gauge, bench, {"Authorization": f"Bearer {token}"}


@contextlib.contextmanager
def single_process(folder: Path, extra: int, workers: int) -> Iterator[System]:
    """`haechi serve` on embedded SQLite, no bus: every role in one process."""
    db = folder / "alerts.db"
    engine = fresh_db(folder, db.name)
    gauge, bench, auth = prepare(engine, extra)
    engine.dispose()
    server, url = start_server(db, mqtt_url=f"mqtt://127.0.0.1:{BROKER[1]}")
    try:
        time.sleep(1.0)  # let the MQTT subscriber connect

        def alerts_stored() -> dict[str, int]:
            with sqlite3.connect(db, timeout=30) as conn:
                return dict(conn.execute("SELECT msg_type, count(*) FROM alerts GROUP BY msg_type").fetchall())

        yield System(url, gauge, bench, lambda: stored(db), alerts_stored, auth)
    finally:
        server.terminate()
        try:
            server.wait(20)
        except subprocess.TimeoutExpired:  # still draining the broker's backlog: not what is measured
            server.kill()
            server.wait()


class Process:
    """A `haechi …` subprocess; a thread keeps its output lines."""

    def __init__(self, args: list[str], env: dict[str, str]) -> None:
        self.args, self.lines = args, []
        self.popen = subprocess.Popen([sys.executable, "-m", "haechi.cli", *args], cwd=ROOT, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=lambda: self.lines.extend(self.popen.stdout), daemon=True).start()

    def seen(self, text: str) -> None:
        deadline = time.monotonic() + START_S
        while time.monotonic() < deadline and self.popen.poll() is None:
            if any(text in line for line in list(self.lines)):
                return
            time.sleep(0.05)
        raise RuntimeError(f"`haechi {' '.join(self.args)}` never said {text!r}:\n{''.join(self.lines)}")

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(START_S)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()


@contextlib.contextmanager
def cluster(folder: Path, extra: int, workers: int) -> Iterator[System]:
    """An API replica, an engine and ``workers`` workers over NATS and a PostgreSQL database of their own."""
    prefix = f"haechi_latency_{uuid.uuid4().hex[:8]}"
    with postgres_database("latency") as url:
        yield from _cluster_on(url, prefix, extra, workers)


def _cluster_on(url: str, prefix: str, extra: int, workers: int) -> Iterator[System]:
    engine = open_db(url)
    processes: list[Process] = []
    try:
        gauge, bench, auth = prepare(engine, extra)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HAECHI_")}
        env |= {"HAECHI_DATABASE_URL": url, "HAECHI_BUS_URL": NATS_URL, "HAECHI_BUS_PREFIX": prefix,
                "PYTHONUNBUFFERED": "1"}
        port = free_port()
        api = Process(["serve", "--port", str(port)], env | {"HAECHI_MQTT_URL": f"mqtt://127.0.0.1:{BROKER[1]}"})
        processes.append(api)
        processes.append(Process(["engine", "--name", "engine-bench"], env))
        processes += [Process(["worker"], env) for _ in range(workers)]
        processes[1].seen("running engine:")
        for worker in processes[2:]:
            worker.seen("worker consuming")
        api_url = f"http://127.0.0.1:{port}"
        _wait_ready(api_url, api)
        time.sleep(1.0)  # let the MQTT subscriber connect
        yield System(api_url, gauge, bench, lambda: _count(engine, observations_table),
                     lambda: _alerts_by_type(engine), auth, lambda: _engine_lag(engine))
    finally:
        for process in processes:
            process.stop()
        engine.dispose()
        asyncio.run(_delete_streams(EventStream.of(prefix).name, IngestStream.of(prefix).name))


def _wait_ready(url: str, api: Process) -> None:
    deadline = time.monotonic() + START_S
    while time.monotonic() < deadline:
        with contextlib.suppress(httpx.TransportError):
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        time.sleep(0.1)
    raise RuntimeError(f"the API replica never got ready:\n{''.join(api.lines)}")


def _count(engine, table) -> int:
    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(table)).scalar_one()


def _alerts_by_type(engine) -> dict[str, int]:
    with engine.connect() as conn:
        return dict(conn.execute(select(alerts.c.msg_type, func.count()).group_by(alerts.c.msg_type)).all())


def _engine_lag(engine) -> int | None:
    """The leading engine's consumer lag as of its last heartbeat (events not yet handled)."""
    with engine.connect() as conn:
        return next((m["lag"] for m in members.members(conn) if m["leader"]), None)


async def _delete_streams(*names: str) -> None:
    nc = await connect_nats(NATS_URL, "haechi-bench-cleanup")
    try:
        for name in names:
            with contextlib.suppress(Exception):
                await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


def listen(url: str, events: queue.Queue, connected: threading.Event, stop: threading.Event) -> None:
    """Put (arrival perf_counter, event name, msg_type) of every SSE event on ``events``."""
    with httpx.stream("GET", f"{url}/api/v1/stream?types=alert.>", timeout=None) as response:
        name = None
        for line in response.iter_lines():
            connected.set()
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                arrived = time.perf_counter()
                events.put((arrived, name, orjson.loads(line[6:]).get("msg_type")))
            if stop.is_set():
                return


def await_alert(events: queue.Queue, msg_type: str) -> float:
    deadline = time.perf_counter() + WAIT_S
    while True:
        arrived, name, kind = events.get(timeout=max(0.001, deadline - time.perf_counter()))
        if name == ALERT_SENT and kind == msg_type:
            return arrived


class Background:
    """The background load: ``publishers`` processes, each sending its share of the readings at its
    share of the rate (one Python MQTT publisher tops out near 3,500 messages/s beside the server on
    two cores), each counting what was acknowledged."""

    def __init__(self, load: Callable, system: System, rate: float, n: int, publishers: int) -> None:
        self.done = [mp.Value("q", 0) for _ in range(publishers)]
        self.processes = [mp.Process(target=load, args=(system, rate / publishers, range(k, n, publishers), done))
                          for k, done in enumerate(self.done)]
        for process in self.processes:
            process.start()

    def acknowledged(self) -> int:
        return sum(done.value for done in self.done)

    def alive(self) -> bool:
        return all(p.is_alive() for p in self.processes)

    def wait_flowing(self) -> None:
        """Until every publisher's first readings are acknowledged: the probe must not start unloaded."""
        deadline = time.perf_counter() + START_S
        while any(done.value == 0 for done in self.done):
            if not self.alive() or time.perf_counter() > deadline:
                raise RuntimeError("the background load never started")
            time.sleep(0.05)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
            process.join(10)


def mqtt_background(system: System, rate: float, share: range, done) -> None:
    """QoS-1 messages at ``rate`` per second; ``done`` (a shared value) counts those the broker
    acknowledged: on a busy machine the publisher may fall short of the rate, and the report says so."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-background-{os.getpid()}")
    client.max_inflight_messages_set(1000)
    acked = [0]

    def on_publish(*_args) -> None:
        acked[0] += 1
        if acked[0] % 100 == 1:
            done.value = acked[0]

    client.on_publish = on_publish
    client.connect(*BROKER)
    client.loop_start()
    started = time.perf_counter()
    for i, index in enumerate(share):  # each made as it is sent: a list of them all took seconds and gigabytes
        [(topic, payload)] = messages_for([observation(system.bench, index)])
        while i - acked[0] >= 1000:  # no queue of paho's own beyond the in-flight window: paho walks
            time.sleep(0.001)  # it on every PUBACK, and a publisher behind its rate fell to ~650/s
        client.publish(topic, payload, qos=1)
        lag = started + (i + 1) / rate - time.perf_counter()
        if lag > 0:
            time.sleep(lag)
    client.loop_stop()


def light_mqtt_background(system: System, rate: float, share: range, done) -> None:
    """The same QoS-1 messages as :func:`mqtt_background`, written as MQTT 3.1.1 packets straight to
    the broker's socket, a millisecond's worth at a time: a load generator costing a few percent of a
    core instead of paho's half, so the server gets the CPU it would have beside sensors that are
    elsewhere. The broker's PUBACKs (4 bytes each, all a QoS-1 publisher gets) are counted as they
    come; at most 1,000 messages are un-acked, as with paho."""
    sock = socket.create_connection(tuple(BROKER))
    client_id = f"bench-light-{os.getpid()}".encode()
    connect = b"\x00\x04MQTT\x04\x02\x00\x00" + struct.pack("!H", len(client_id)) + client_id  # clean, no keep-alive
    sock.sendall(b"\x10" + _length(len(connect)) + connect)
    if sock.recv(4) != b"\x20\x02\x00\x00":
        raise RuntimeError("the broker refused the light publisher")
    sock.setblocking(False)
    received, pending, started = 0, bytearray(), time.perf_counter()
    for i, index in enumerate(share):
        [(topic, payload)] = messages_for([observation(system.bench, index)])
        name = topic.encode()
        body = struct.pack("!H", len(name)) + name + struct.pack("!H", i % 65535 + 1) + payload
        pending += b"\x32" + _length(len(body)) + body
        ahead = started + (i + 1) / rate - time.perf_counter()
        if ahead > 0.001 or len(pending) > 65536:
            sock.setblocking(True)
            sock.sendall(pending)
            pending.clear()
            received += _drained(sock)
            while i + 1 - received // 4 >= 1000:
                time.sleep(0.001)
                received += _drained(sock)
            done.value = received // 4
            time.sleep(max(0.0, started + (i + 1) / rate - time.perf_counter()))
    sock.close()


def _drained(sock: socket.socket) -> int:
    """Bytes waiting on a non-blocking socket, read and counted."""
    sock.setblocking(False)
    got = 0
    with contextlib.suppress(BlockingIOError):
        while chunk := sock.recv(65536):
            got += len(chunk)
    return got


def _length(n: int) -> bytes:
    """MQTT's variable-length Remaining Length."""
    out = bytearray()
    while True:
        n, digit = n >> 7, n & 0x7F
        out.append(digit | (0x80 if n else 0))
        if not n:
            return bytes(out)


def http_background(system: System, rate: float, share: range, done) -> None:
    """Bulk uploads of ``rate`` / BATCHES_PER_S readings, BATCHES_PER_S times a second; ``done``
    counts the readings the API acknowledged (200 stored, or 202 queued)."""
    size = max(1, round(rate / BATCHES_PER_S))
    with httpx.Client(base_url=system.url, headers=system.auth, timeout=60) as client:
        started = time.perf_counter()
        for batch, i in enumerate(range(0, len(share), size)):
            readings = [observation(system.bench, k) for k in share[i:i + size]]
            answer = client.post("/api/v1/observations", json=readings)
            if answer.status_code in (200, 202):
                done.value += len(readings)
            lag = started + (batch + 1) / BATCHES_PER_S - time.perf_counter()
            if lag > 0:
                time.sleep(lag)


#: HTTP background: a gateway's bulk uploads, ten a second.
BATCHES_PER_S = 10


class MqttProbe:
    """The probe's readings as QoS-1 MQTT messages on the gauge's topic."""

    def __init__(self, system: System) -> None:
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"bench-alert-probe-{os.getpid()}")
        self.client.connect(*BROKER)
        self.client.loop_start()
        self.topic = f"haechi/v1/{system.gauge}/observations"

    def send(self, at: datetime, level: float) -> float:
        sent = time.perf_counter()
        self.client.publish(self.topic, orjson.dumps({"phenomenon_time": at.isoformat(), "result": level}), qos=1)
        return sent

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class HttpProbe:
    """The probe's readings as single-reading uploads (`POST /api/v1/observations`)."""

    def __init__(self, system: System) -> None:
        self.client = httpx.Client(base_url=system.url, headers=system.auth, timeout=60)
        self.gauge = system.gauge

    def send(self, at: datetime, level: float) -> float:
        sent = time.perf_counter()
        answer = self.client.post("/api/v1/observations", json=[
            {"datastream_id": self.gauge, "phenomenon_time": at.isoformat(), "result": level}])
        answer.raise_for_status()
        return sent

    def close(self) -> None:
        self.client.close()


TRANSPORTS = {"mqtt": (mqtt_background, MqttProbe), "mqtt-light": (light_mqtt_background, MqttProbe),
              "http": (http_background, HttpProbe)}


def probe(system: System, cycles: int, background_rate: float, seconds_per_cycle: float, over: str,
          publishers: int = 1) -> dict:
    """The probe cycles under background load; the figures as a dict."""
    load, Probe = TRANSPORTS[over]
    events: queue.Queue = queue.Queue()
    connected, stop = threading.Event(), threading.Event()
    threading.Thread(target=listen, args=(system.url, events, connected, stop), daemon=True).start()
    if not connected.wait(10):
        raise RuntimeError("no SSE connection")
    n_background = int(background_rate * (cycles * seconds_per_cycle + 30))
    background = Background(load, system, background_rate, n_background, publishers)
    probe_ = None
    try:
        background.wait_flowing()
        time.sleep(3)  # background at full rate before the first probe
        probe_ = Probe(system)
        start = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(days=30)
        delays, first_ms = [], None
        stored_before, done_before, clock_before = system.stored(), background.acknowledged(), time.perf_counter()
        for cycle in range(cycles + 1):  # cycle 0 is the warm-up
            t = start + cycle * CYCLE
            sent = probe_.send(t, ISSUE_M)
            delay = await_alert(events, "Alert") - sent
            if cycle == 0:
                first_ms = delay * 1000
            else:
                delays.append(delay)
            for k in range(1, CALM_READINGS + 1):
                probe_.send(t + timedelta(minutes=10 * k), CALM_M)
                time.sleep(0.01)
            await_alert(events, "Cancel")
        seconds = time.perf_counter() - clock_before
        background_alive, done_during = background.alive(), background.acknowledged() - done_before
        stored_during = system.stored() - stored_before - (cycles + 1) * (CALM_READINGS + 1)
        lag = system.lag()
        stop.set()
    finally:
        if probe_ is not None:
            probe_.close()
        background.stop()
    ms = sorted(d * 1000 for d in delays)
    p99 = ms[max(0, int(len(ms) * 0.99) - 1)]
    return {"cycles": len(ms), "over": over, "background_obs_per_s": background_rate,
            "background_acknowledged_obs_per_s": round(done_during / seconds),
            "background_stored_obs_per_s": round(stored_during / seconds),
            "background_running_at_end": background_alive, "engine_lag_at_end": lag,
            "bench_datastreams": len(system.bench), "alerts_stored": system.alerts(),
            "p50_ms": round(statistics.median(ms), 1), "p99_ms": round(p99, 1),
            "max_ms": round(ms[-1], 1), "min_ms": round(ms[0], 1), "warm_up_ms": round(first_ms, 1),
            "target_p99_ms": 200, "target_met": p99 < 200}


def measure(cycles: int, background_rate: float, extra: int, mode: str = "single", workers: int = 1,
            over: str = "mqtt", publishers: int = 1) -> dict:
    """One mode's figures, on a private broker of its own."""
    set_up = {"single": single_process, "cluster": cluster}[mode]
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker = start_broker(folder)
        try:
            with set_up(folder, extra, workers) as system:
                figures = probe(system, cycles, background_rate, SECONDS_PER_CYCLE[mode], over, publishers)
        finally:
            broker.terminate()
            broker.wait(10)
    return {"mode": mode, **({"workers": workers} if mode == "cluster" else {}), "publishers": publishers, **figures}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cycles", type=int, default=50)
    parser.add_argument("--background", type=float, default=5000)
    parser.add_argument("--streams", type=int, default=1000, help="extra bench datastreams for the background")
    parser.add_argument("--cluster", action="store_true",
                        help="also measure an API replica, an engine and workers on NATS and PostgreSQL")
    parser.add_argument("--workers", type=int, default=1, help="`haechi worker`s in the cluster")
    parser.add_argument("--over", choices=sorted(TRANSPORTS), default="mqtt",
                        help="how the background and the probe reach Haechi: MQTT messages (paho, or "
                             "mqtt-light: packets written by the bench, a light load generator) or HTTP uploads")
    parser.add_argument("--publishers", type=int, default=2, help="processes sharing the background load")
    args = parser.parse_args()
    results = [measure(args.cycles, args.background, args.streams, over=args.over, publishers=args.publishers)]
    if args.cluster:
        results.append(measure(args.cycles, args.background, args.streams, "cluster", args.workers, args.over,
                               args.publishers))
    print(json.dumps(results if args.cluster else results[0], indent=2))


if __name__ == "__main__":
    main()
