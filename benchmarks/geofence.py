"""Geofence evaluation for many wards (issue 6): 100,000 wards reporting every 30 s on one process.

Each ward has two safe zones (home ~100 m, school ~200 m; the school expected all day so leaving it
alerts); 10 hazard areas are active. Every ward reports once per 30-second cycle at a uniformly
random moment, so positions arrive at ~3,333/s. A driver replays that stream in real time and
hands whatever has arrived to the evaluator (the MQTT consumer's batching: take all, linger 10 ms),
measuring for every position the time from its arrival to the evaluation's end, and for alerts the
time to the guardian-alert event on the bus.

Modes, in one run:

- ``vectorised``: ``Geofence.check`` (shapely 2 STRtree + vectorised predicates, numpy state);
- ``naive`` baseline: per position, ``zone.intersects(Point)`` for each of its zones and each hazard
  in Python, with dict state — timed interleaved with the vectorised check on the same batches
  (35 positions: the real-time batch at 3,333/s with a 10 ms linger; and 350), medians of both;
- ``service``: the whole ``CareService.report`` path on an embedded SQLite DB (device and consent
  look-ups, positions stored, evaluation, alerts stored and published as ``care.alert``).

Usage: ``python -m benchmarks.geofence [--wards 100000] [--seconds 30] [--skip-service]``
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from shapely.geometry import Point, box, mapping
from sqlalchemy import insert

from haechi.bus.memory import InProcessBus
from haechi.care.geofence import Geofence, HazardArea, Zone, parse_schedule
from haechi.care.reports import Position
from haechi.care.rules import rules
from haechi.care.service import CareService
from haechi.core.clock import utcnow
from haechi.model.events import CARE_ALERT
from haechi.store.schema import (
    care_consents,
    care_devices,
    care_guardians,
    care_ward_guardians,
    care_wards,
    care_zones,
)

from .common import fresh_db

CYCLE_S = 30.0
OUTSIDE_SHARE = 0.005  # wards found outside both zones in a cycle (each an alert)
ALL_DAY = [{"days": list(range(7)), "start": "00:00", "end": "23:59"}]
SEOUL = (126.80, 37.45, 127.20, 37.70)


def city(n: int, seed: int = 7):
    """Homes, schools, hazard areas and one position per ward (mostly inside a zone)."""
    rng = np.random.default_rng(seed)
    home = np.column_stack([rng.uniform(SEOUL[0], SEOUL[2], n), rng.uniform(SEOUL[1], SEOUL[3], n)])
    school = home + rng.uniform(-0.01, 0.01, (n, 2))
    h, s = 0.0005, 0.001  # half-sizes in degrees: ~45–55 m and ~90–110 m
    zones = []
    for w in range(n):
        zones.append(Zone(2 * w + 1, w + 1, "home", "home", box(*(home[w] - h), *(home[w] + h)), ()))
        zones.append(Zone(2 * w + 2, w + 1, "school", "school", box(*(school[w] - s), *(school[w] + s)),
                          parse_schedule(ALL_DAY)))
    hazards = [HazardArea(i + 1, "heavy_rain", "warning",
                          Point(rng.uniform(SEOUL[0], SEOUL[2]), rng.uniform(SEOUL[1], SEOUL[3])).buffer(0.01))
               for i in range(10)]
    where = rng.random(n)
    pos = np.where((where < 0.5)[:, None], home, school) + rng.uniform(-h / 2, h / 2, (n, 2))
    out = where > 1 - OUTSIDE_SHARE
    pos[out] = home[out] + 0.02
    arrivals = np.sort(rng.uniform(0, CYCLE_S, n))
    order = rng.permutation(n)  # which ward reports at each arrival
    return zones, hazards, pos, order, arrivals


async def drive(process, arrivals: np.ndarray, seconds: float, linger: float = 0.01):
    """Replay arrivals in real time; ``process(i, j)`` handles arrivals[i:j]. Returns latencies (s)."""
    loop = asyncio.get_running_loop()
    n = int(np.searchsorted(arrivals, seconds))
    latency = np.empty(n)
    begin, i = loop.time(), 0
    while i < n:
        now = loop.time() - begin
        j = min(int(np.searchsorted(arrivals, now, side="right")), n)
        if j == i:
            await asyncio.sleep(max(0.0, min(linger, arrivals[i] - now)))
            continue
        await process(i, j, begin)
        latency[i:j] = (loop.time() - begin) - arrivals[i:j]
        i = j
        await asyncio.sleep(linger)
    return latency, loop.time() - begin


def figures(latency: np.ndarray) -> dict[str, float]:
    return {"p50_ms": 1000 * float(np.percentile(latency, 50)), "p99_ms": 1000 * float(np.percentile(latency, 99)),
            "max_ms": 1000 * float(latency.max())}


# ── vectorised and naive ──


def run_vectorised(n: int, seconds: float) -> dict:
    zones, hazards, pos, order, arrivals = city(n)
    r = rules()["dwell"]
    fence = Geofence(zones, hazards, dwell_radius_m=r["radius_m"], dwell_s=r["minutes"] * 60)
    wards = order + 1
    t0 = time.time()
    fence.inside[1:n + 1] = True  # the cycle before: everybody inside a zone
    alerts = 0
    busy = 0.0

    async def process(i, j, begin):
        nonlocal alerts, busy
        started = time.perf_counter()
        w = wards[i:j]
        found = fence.check(w, pos[w - 1, 0], pos[w - 1, 1], np.full(j - i, t0 + arrivals[j - 1]))
        alerts += len(found)
        busy += time.perf_counter() - started

    latency, elapsed = asyncio.run(drive(process, arrivals, seconds))
    return {"positions": len(latency), "alerts": alerts, "elapsed_s": elapsed, "busy_s": busy,
            "capacity_per_s": len(latency) / busy, **figures(latency)}


class Naive:
    """The baseline: per position, a Python loop over its ward's zones and every hazard (dict state)."""

    def __init__(self, zones, hazards) -> None:
        self.by_ward: dict[int, list[Zone]] = {}
        for z in zones:
            self.by_ward.setdefault(z.ward_id, []).append(z)
        self.hazards, self.outside = hazards, {}

    def check(self, wards, lon, lat, moment: datetime) -> int:
        alerts = 0
        for w, x, y in zip(wards.tolist(), lon.tolist(), lat.tolist(), strict=True):
            p = Point(x, y)
            own = self.by_ward.get(w, [])
            inside = any(z.geometry.intersects(p) for z in own)
            expected = any(win.holds(moment) for z in own for win in z.schedule)
            alerts += (not inside) and expected and not self.outside.get(w, False)
            self.outside[w] = not inside
            alerts += sum(1 for h in self.hazards if h.geometry.intersects(p))
        return alerts


def run_interleaved(n: int, batch: int, rounds: int) -> dict:
    """Both evaluators on the same batches, alternately, so machine load hits both alike."""
    zones, hazards, pos, order, _ = city(n)
    r = rules()["dwell"]
    fence = Geofence(zones, hazards, dwell_radius_m=r["radius_m"], dwell_s=r["minutes"] * 60)
    fence.inside[1:n + 1] = True
    naive = Naive(zones, hazards)
    wards = order + 1
    t0 = time.time()
    vector_s, naive_s = [], []
    for k in range(rounds):
        w = wards[(k * batch) % n:(k * batch) % n + batch]
        x, y = pos[w - 1, 0], pos[w - 1, 1]
        started = time.perf_counter()
        fence.check(w, x, y, np.full(len(w), t0 + k))
        vector_s.append((time.perf_counter() - started) / len(w))
        started = time.perf_counter()
        naive.check(w, x, y, datetime.fromtimestamp(t0 + k, UTC))
        naive_s.append((time.perf_counter() - started) / len(w))
    v, b = float(np.median(vector_s)), float(np.median(naive_s))
    return {"vector_per_s": 1 / v, "naive_per_s": 1 / b, "ratio": b / v}


# ── the whole service on SQLite ──


def seed_db(engine, zones, n: int) -> dict[int, str]:
    now = utcnow()
    with engine.begin() as conn:
        gid = conn.execute(insert(care_guardians).values(name="bench", language="ko",
                                                         created_at=now)).inserted_primary_key[0]
        conn.execute(insert(care_wards), [{"id": w, "kind": "child", "alias": f"w{w}", "created_at": now}
                                          for w in range(1, n + 1)])
        conn.execute(insert(care_ward_guardians), [{"ward_id": w, "guardian_id": gid} for w in range(1, n + 1)])
        conn.execute(insert(care_consents), [{
            "ward_id": w, "consented_by": "bench", "relation": "parent", "purpose": "bench",
            "granted_at": now - timedelta(days=1), "valid_until": now + timedelta(days=1), "recorded_by": "bench"}
            for w in range(1, n + 1)])
        conn.execute(insert(care_devices), [{"id": w, "ref": f"tag{w}", "ward_id": w, "kind": "tracker",
                                             "created_at": now} for w in range(1, n + 1)])
        conn.execute(insert(care_zones), [{"id": z.id, "ward_id": z.ward_id, "kind": z.kind, "name": z.name,
                                           "geometry": mapping(z.geometry), "schedule": ALL_DAY if z.schedule else [],
                                           "created_at": now} for z in zones])
    return {w: f"tag{w}" for w in range(1, n + 1)}


def run_service(n: int, seconds: float, folder: Path) -> dict:
    zones, hazards, pos, order, arrivals = city(n)
    engine = fresh_db(folder, "geofence.db")
    seed_db(engine, zones, n)
    bus = InProcessBus()
    received: dict[int, float] = {}

    async def scenario():
        loop = asyncio.get_running_loop()
        service = CareService(engine, bus)
        await service.start()
        service.geofence.set_hazards(hazards)
        service.geofence.inside[1:n + 1] = True  # the cycle before: everybody inside a zone
        alert_ward: dict[int, float] = {}

        async def on_alert(event):
            received[event.data["alert_id"]] = loop.time()

        bus.subscribe(CARE_ALERT, on_alert)
        wards = order + 1
        arrival_of = {}

        async def process(i, j, begin):
            now = utcnow()
            w = wards[i:j]
            for k, ward in zip(range(i, j), w.tolist(), strict=True):
                arrival_of[ward] = begin + arrivals[k]
            items = [Position(f"tag{x}", now, float(pos[x - 1, 0]), float(pos[x - 1, 1])) for x in w.tolist()]
            outcome = await service.report(items, "bench", now)
            for a in outcome.alerts:
                alert_ward[a["id"]] = a["ward_id"]

        latency, elapsed = await drive(process, arrivals, seconds)
        await asyncio.sleep(0.5)
        await service.stop()
        alert_latency = np.array([received[a] - arrival_of[w] for a, w in alert_ward.items() if a in received])
        return latency, elapsed, alert_latency

    latency, elapsed, alert_latency = asyncio.run(scenario())
    engine.dispose()
    result = {"positions": len(latency), "alerts": len(alert_latency), "elapsed_s": elapsed, **figures(latency)}
    if len(alert_latency):
        result |= {f"alert_{k}": v for k, v in figures(alert_latency).items()}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--wards", type=int, default=100_000)
    parser.add_argument("--seconds", type=float, default=CYCLE_S, help="real-time seconds replayed (≤ 30)")
    parser.add_argument("--rounds", type=int, default=200, help="batches per interleaved comparison")
    parser.add_argument("--skip-service", action="store_true")
    parser.add_argument("--only-service", action="store_true")
    args = parser.parse_args()
    required = args.wards / CYCLE_S
    print(f"{args.wards:,} wards every {CYCLE_S:g} s → {required:,.0f} positions/s required")
    if args.only_service:
        report_service(args)
        return
    v = run_vectorised(args.wards, args.seconds)
    print(f"vectorised: {v['positions']:,} positions, {v['alerts']} alerts; latency p50 {v['p50_ms']:.1f} ms, "
          f"p99 {v['p99_ms']:.1f} ms, max {v['max_ms']:.1f} ms; busy {v['busy_s']:.2f} s of {v['elapsed_s']:.1f} s; "
          f"capacity {v['capacity_per_s']:,.0f}/s")
    for batch in (35, 350):
        c = run_interleaved(args.wards, batch, args.rounds)
        print(f"interleaved, batches of {batch}: vectorised {c['vector_per_s']:,.0f} positions/s, "
              f"naive baseline {c['naive_per_s']:,.0f} positions/s (medians); ratio {c['ratio']:.1f}×")
    if not args.skip_service:
        report_service(args)


def report_service(args) -> None:
    with tempfile.TemporaryDirectory() as folder:
        s = run_service(args.wards, args.seconds, Path(folder))
    print(f"service (SQLite): {s['positions']:,} positions, {s['alerts']} alerts; position latency "
          f"p50 {s['p50_ms']:.1f} ms, p99 {s['p99_ms']:.1f} ms, max {s['max_ms']:.1f} ms; "
          f"alert latency p50 {s.get('alert_p50_ms', float('nan')):.1f} ms, "
          f"p99 {s.get('alert_p99_ms', float('nan')):.1f} ms, max {s.get('alert_max_ms', float('nan')):.1f} ms")

if __name__ == "__main__":
    main()
