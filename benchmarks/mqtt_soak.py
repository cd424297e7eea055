"""MQTT soak: a sustained sensor surge through the shipped broker configuration, counting every reading.

A private Mosquitto runs deploy/mosquitto/haechi.conf (docs/mqtt.md) on a free port; a `haechi
serve` process (embedded SQLite, HAECHI_MQTT_URL) subscribes. Publisher processes send QoS-1
readings, each numbered (``parameters.seq``) and with a live timestamp, at ``--rate`` in all:

- ``spread``: ``--rate`` streams at 1 Hz each (5,000 streams at 5,000 obs/s);
- ``babble``: ``--babblers`` streams at 200 Hz carry the rate (25 at 5,000 obs/s).

The four modelled Han River gauges are among the streams (they start river forecasts), the
first of the babblers in ``babble``. Every 10 s it prints sent, acknowledged by the broker,
stored, the server's gap count (``/metrics``) and the resident memory of server and broker; at the
end, once publishing stops and the server has drained, lost = acknowledged − stored.

``--baseline`` runs the same load first for ``--baseline-duration`` seconds through a broker with
Mosquitto's defaults (the configuration issue 17 measured), for a side-by-side in the same run.

    .venv/bin/python benchmarks/mqtt_soak.py --mode spread [--rate 5000] [--duration 600]
    .venv/bin/python benchmarks/mqtt_soak.py --mode babble [--babblers 25]
"""

from __future__ import annotations

import argparse
import getpass
import json
import multiprocessing as mp
import re
import sqlite3
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import orjson
import paho.mqtt.client as mqtt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import free_port, fresh_db, make_streams, start_server
from haechi.cities.provision import provision_stations
from haechi.predict import live, river
from haechi.store import places as place_store

SHIPPED = Path(__file__).resolve().parents[1] / "deploy" / "mosquitto" / "haechi.conf"
BABBLE_HZ = 200
SAMPLE_S = 10.0
DRAIN_PATIENCE_S = 300.0
WINDOW = 1000  # un-acked messages per publisher


# ── the broker and the server ────────────────────────────────────────────────────────────


def start_broker(folder: Path, shipped: bool) -> tuple[subprocess.Popen, int]:
    port = free_port()
    conf = folder / "mosquitto.conf"
    conf.write_text(f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence_location {folder}/\n"
                    f"user {getpass.getuser()}\n" + (SHIPPED.read_text(encoding="utf-8") if shipped else ""))
    broker = subprocess.Popen(["mosquitto", "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(0.5)
    return broker, port


def gauge_streams(engine) -> list[int]:
    """The four modelled gauges and Paldang dam as station places: their level streams start forecasts."""
    with engine.begin() as conn:
        place_store.save_places(conn, [
            {"kind": "river_gauge", "ref": ref, "name_ko": ref, "name_en": ref, "lon": 126.9 + i / 100, "lat": 37.52,
             "river": "Han River"} for i, ref in enumerate(river.GAUGES)] + [
            {"kind": "dam", "ref": "paldang", "name_ko": "팔당댐", "name_en": "Paldang Dam",
             "lon": 127.281, "lat": 37.524}])
        provision_stations(conn)
        streams = live.station_streams(conn, ("river_gauge",), ("water_level",))
    return sorted(streams.values())


def prepare(folder: Path, count: int) -> tuple[Path, list[int]]:
    engine = fresh_db(folder, "soak.db")
    gauges = gauge_streams(engine)
    bench = make_streams(engine, count - len(gauges))
    engine.dispose()
    return folder / "soak.db", gauges + [s for s in bench if s not in gauges]


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return 0.0


def stored(db: Path) -> int:
    with sqlite3.connect(db, timeout=60) as conn:
        return conn.execute("SELECT count(*) FROM observations WHERE result_time IS NULL").fetchone()[0]  # no forecasts


def missing(url: str) -> int:
    try:
        text = httpx.get(f"{url}/metrics", timeout=10).text
    except httpx.HTTPError:
        return -1
    found = re.findall(r"^haechi_mqtt_missing_readings\{[^}]*\} (\S+)$", text, re.MULTILINE)
    return int(sum(float(v) for v in found))


# ── publishers (their own processes) ─────────────────────────────────────────────────────


def publish(port: int, streams: list[int], hz: float, duration: float, start: float, t0: datetime,
            sent: mp.Value, acked: mp.Value) -> None:
    """Each stream at ``hz`` readings a second (spread evenly over each round) until ``duration`` is
    over; waits for every PUBACK. At most ``WINDOW`` un-acked: paho slows down badly with a long
    queue of its own, and a real device cannot send faster than its broker acknowledges either."""
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=f"soak-{streams[0]}")
    client.max_inflight_messages_set(WINDOW)
    acks = [0]

    def on_publish(*_):
        acks[0] += 1

    client.on_publish = on_publish
    client.connect("127.0.0.1", port)
    client.loop_start()
    mine, per_round = 0, len(streams)
    for n in range(int(duration * hz)):
        at = (t0 + timedelta(seconds=n / hz)).isoformat()
        for j, stream in enumerate(streams):
            if j % 50 == 0:
                if (lag := start + (n + j / per_round) / hz - time.time()) > 0:
                    time.sleep(lag)
                sent.value, acked.value = mine, acks[0]
            while mine - acks[0] >= WINDOW:
                time.sleep(0.001)
            body = orjson.dumps({"phenomenon_time": at, "result": 3.0 + (n % 97) / 1000, "parameters": {"seq": n + 1}})
            while client.publish(f"haechi/v1/{stream}/observations", body, qos=1).rc != mqtt.MQTT_ERR_SUCCESS:
                time.sleep(0.01)  # paho refused it (a reconnect): try again, never skip a number
            mine += 1
    deadline = time.time() + DRAIN_PATIENCE_S
    while acks[0] < mine and time.time() < deadline:
        sent.value, acked.value = mine, acks[0]
        time.sleep(0.2)
    sent.value, acked.value = mine, acks[0]
    client.loop_stop()
    client.disconnect()


def plan(mode: str, rate: int, babblers: int, streams: list[int]) -> tuple[list[int], float]:
    if mode == "spread":
        return streams[:rate], 1.0
    return streams[:babblers], rate / babblers


# ── one soak ─────────────────────────────────────────────────────────────────────────────


def soak(mode: str, rate: int, babblers: int, duration: float, publishers: int, shipped: bool) -> dict:
    count = rate if mode == "spread" else max(babblers, 8)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        broker, port = start_broker(folder, shipped)
        db, streams = prepare(folder, count)
        server, url = start_server(db, mqtt_url=f"mqtt://127.0.0.1:{port}")
        time.sleep(2.0)  # the subscription stands before anything is published
        chosen, hz = plan(mode, rate, babblers, streams)
        counters = [(mp.Value("q", 0), mp.Value("q", 0)) for _ in range(publishers)]
        start, t0 = time.time() + 1.0, datetime.now(UTC).replace(microsecond=0)
        procs = [mp.Process(target=publish, args=(port, chosen[i::publishers], hz, duration, start, t0, *counters[i]))
                 for i in range(publishers)]
        for p in procs:
            p.start()
        samples = []

        def sample() -> dict:
            row = {"t_s": round(time.time() - start), "sent": sum(s.value for s, _ in counters),
                   "acked": sum(a.value for _, a in counters), "stored": stored(db), "gaps": missing(url),
                   "server_mb": rss_mb(server.pid), "broker_mb": rss_mb(broker.pid)}
            samples.append(row)
            print(json.dumps(row), flush=True)
            return row

        while any(p.is_alive() for p in procs):
            time.sleep(SAMPLE_S)
            sample()
        for p in procs:
            p.join()
        published_s = time.time() - start  # includes the wait for the last acknowledgements
        deadline, last = time.time() + DRAIN_PATIENCE_S, -1
        while time.time() < deadline:  # drained: everything acked is stored, or nothing moves for 20 s
            row = sample()
            if row["stored"] >= row["acked"] or (row["stored"] == last and row["t_s"] > duration + 20):
                break
            last = row["stored"]
            time.sleep(SAMPLE_S)
        final = sample()
        server.terminate()
        server.wait(30)
        broker.terminate()
        broker.wait(30)
    warm = [s["server_mb"] for s in samples if s["t_s"] >= 60 and s["t_s"] <= duration]
    return {"mode": mode, "broker_config": "shipped" if shipped else "mosquitto defaults", "rate_obs_s": rate,
            "streams": len(chosen), "hz_per_stream": hz, "duration_s": duration,
            "achieved_obs_s": round(final["sent"] / published_s),
            "sent": final["sent"], "acked": final["acked"], "stored": final["stored"],
            "lost": final["acked"] - final["stored"], "lost_pct": round(100 * (final["acked"] - final["stored"])
                                                                         / max(final["acked"], 1), 3),
            "gaps_reported": final["gaps"],
            "server_mb_first_min_end": next((s["server_mb"] for s in samples if s["t_s"] >= 60), None),
            "server_mb_max_after_warmup": max(warm, default=None), "server_mb_end": final["server_mb"],
            "broker_mb_max": max(s["broker_mb"] for s in samples)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mode", choices=("spread", "babble"), default="spread")
    parser.add_argument("--rate", type=int, default=5000)
    parser.add_argument("--babblers", type=int, default=25)
    parser.add_argument("--duration", type=float, default=600)
    parser.add_argument("--publishers", type=int, default=2)
    parser.add_argument("--baseline", action="store_true", help="first the same load through Mosquitto's defaults")
    parser.add_argument("--baseline-duration", type=float, default=60)
    args = parser.parse_args()
    results = []
    if args.baseline:
        results.append(soak(args.mode, args.rate, args.babblers, args.baseline_duration, args.publishers, False))
    results.append(soak(args.mode, args.rate, args.babblers, args.duration, args.publishers, True))
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
