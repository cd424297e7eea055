"""Citywide urban-flood risk for every dong of Seoul for a 6-hour rainfall series (target ≤ 2 s).

Set-up (not timed): a fresh SQLite DB with the Seoul pack (467 legal dongs with boundaries). Timed,
each run: reading the dongs, their land use, design rainfall, semi-basements and underpasses
(``flood.load_areas``) plus the vectorised model (``flood.assess`` + ``risk_rows``) — the whole of a
citywide assessment; and, separately, the same with every dong boundary read for the map layer
(JSON parsing of the polygons dominates that). The rain is 36 ten-minute steps, different in every dong (a storm cell
crossing the city), like the 2022-08-08 storm.

Baseline, same run, same inputs: the same method as a plain-Python loop over dongs and steps
(``math`` only), timed on the pure computation; its results must equal the vectorised ones.

    .venv/bin/python benchmarks/flood_risk.py [--runs 5]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import fresh_db, median
from haechi.cities.load import load_city
from haechi.predict import flood

STEP_MIN = 10
HOURLY_2022 = [20, 40, 100, 60, 20, 10]  # mm per hour, the shape of the 2022-08-08 storm in 동작구


def storm(n_areas: int, seed: int = 7) -> np.ndarray:
    """Rain per dong × 10-minute step: the 2022 shape, scaled 0.5–1.4 and shifted ±1 h per dong."""
    rng = np.random.default_rng(seed)
    base = np.repeat(np.array(HOURLY_2022, float) / 6, 6)
    rows = []
    for _ in range(n_areas):
        shift = int(rng.integers(-6, 7))
        rows.append(np.roll(base, shift) * rng.uniform(0.5, 1.4))
    return np.array(rows)


def assess_loop(rain: list[list[float]], cns: list[float], design: list[float], area_km2: list[float]) -> list[tuple]:
    """The method of ``flood.assess`` in plain Python: (ratio, overflow m³) per dong."""
    width = 60 // STEP_MIN

    def runoff(p: float, s: float) -> float:
        ia = 0.2 * s
        return (p - ia) ** 2 / (p - ia + s) if p > ia else 0.0

    out = []
    for i, series in enumerate(rain):
        s = 25400.0 / cns[i] - 254.0
        cum, q_prev, qs, cums = 0.0, 0.0, [], []
        for r in series:
            cum += r
            q = runoff(cum, s)
            qs.append(q - q_prev)
            cums.append(cum)
            q_prev = q
        best, overflow = 0.0, 0.0
        for t in range(len(series)):
            lo = max(0, t - width + 1)
            hourly = sum(qs[lo:t + 1])
            before = cums[t] - sum(series[lo:t + 1])
            capacity = runoff(before + design[i], s) - runoff(before, s)
            if capacity > 0:
                best = max(best, hourly / capacity)
            overflow += max(qs[t] - capacity / width, 0.0)
        out.append((best, overflow / 1000.0 * area_km2[i] * 1e6))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = fresh_db(Path(folder))
        started = time.perf_counter()
        load_city(engine, "seoul")
        print(f"set-up: Seoul pack loaded in {time.perf_counter() - started:.1f} s")
        with engine.connect() as conn:
            areas = flood.load_areas(conn)
        rain = storm(len(areas.codes))
        full, model, mapped, pure = [], [], [], []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            with engine.connect() as conn:
                areas = flood.load_areas(conn, geometry=False)
            t1 = time.perf_counter()
            result = flood.assess(rain, STEP_MIN, areas)
            pure.append(time.perf_counter() - t1)
            rows = flood.risk_rows(areas, result)
            t2 = time.perf_counter()
            full.append(t2 - t0)
            model.append(t2 - t1)
            with engine.connect() as conn:  # the simulation's map layer also reads every boundary
                flood.load_areas(conn)
            mapped.append(time.perf_counter() - t2 + (t2 - t1))
        cn = flood.composite_cn(areas.shares, flood.config().class_cn)
        inputs = (rain.tolist(), cn.tolist(), areas.design_mm_h.tolist(), areas.area_km2.tolist())
        loop = []
        for _ in range(args.runs):
            t0 = time.perf_counter()
            slow = assess_loop(*inputs)
            loop.append(time.perf_counter() - t0)
        engine.dispose()
    ratios = np.array([r for r, _ in slow])
    overflow = np.array([o for _, o in slow])
    assert np.allclose(ratios, result["surcharge_ratio"]) and np.allclose(overflow, result["overflow_m3"]), \
        "the loop and the vectorised model disagree"
    counts = {level: sum(1 for r in rows if r["risk"] == level) for level in flood.config().risk_levels}
    print(f"{len(areas.codes)} dongs × {rain.shape[1]} ten-minute steps (6 h); risk: {counts}")
    print(f"citywide run (DB read + model), median of {args.runs}: {median(full) * 1000:8.1f} ms   target ≤ 2000 ms")
    print(f"  … with boundaries for the map,  median of {args.runs}: {median(mapped) * 1000:8.1f} ms")
    print(f"model + result rows,           median of {args.runs}: {median(model) * 1000:8.1f} ms")
    print(f"vectorised model (assess),     median of {args.runs}: {median(pure) * 1000:8.1f} ms")
    print(f"baseline: plain-Python loop,   median of {args.runs}: {median(loop) * 1000:8.1f} ms"
          f"   ({median(loop) / median(pure):.0f}× the vectorised model)")


if __name__ == "__main__":
    main()
