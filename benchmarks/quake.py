"""Earthquake damage over 500,000 generated building records (target ≤ 5 s, vectorised).

Set-up (not timed): 500,000 buildings spread over Seoul's extent, with register structure types,
storeys, completion years and floor areas drawn to resemble a city register (RC apartments, old
masonry houses, steel …), each assigned to one of 467 dong indexes. These are generated test
records, not Seoul's building register.

Timed, each run: ``quake.building_damage`` (distance → BA08 PGA → Korean code era → Hazus class →
five damage-state probabilities, in chunks of 100,000) plus ``damage_by_area`` (expected counts per
dong). Baseline, same run: the same method record by record in plain Python (``math`` only) on a
sample, scaled per record; its results must equal the vectorised ones.

    .venv/bin/python benchmarks/quake.py [--buildings 500000] [--runs 3] [--sample 5000]
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import median
from haechi.predict import quake

STRUCTURES = ["철근콘크리트구조", "철근콘크리트벽식구조", "조적구조", "철골구조", "철골철근콘크리트구조", "목구조",
              "보강조적구조"]
SHARES = [0.35, 0.25, 0.2, 0.1, 0.04, 0.03, 0.03]


def generate(n: int, seed: int = 5) -> quake.Buildings:
    rng = np.random.default_rng(seed)
    structure = rng.choice(STRUCTURES, size=n, p=SHARES)
    family, _ = quake.family_codes(structure)
    floors = np.where(structure == "철근콘크리트벽식구조", rng.integers(5, 30, n), rng.integers(1, 8, n))
    return quake.Buildings(
        lon=rng.uniform(126.76, 127.18, n), lat=rng.uniform(37.43, 37.70, n), family=family, floors=floors,
        year=rng.integers(1960, 2025, n), floor_area_m2=rng.lognormal(6.0, 1.0, n),
        area=rng.integers(0, 467, n),
    )


def loop(b: quake.Buildings, s: quake.QuakeScenario, rows: range) -> list[list[float]]:
    """The method for one record at a time, in plain Python (the baseline)."""
    cfg = quake.model().config
    frag = quake.model().fragility
    c = dict(zip(["c1", "c2", "c3", "h", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "mh"],
                 cfg["gmpe"]["coefficients"]["pga"][:12], strict=True))
    half = 10 ** (cfg["rupture"]["a"] + cfg["rupture"]["b"] * s.magnitude) / 2
    dm = s.magnitude - c["mh"]
    f_m = c["e1"] + (c["e5"] * dm + c["e6"] * dm * dm if s.magnitude <= c["mh"] else c["e7"] * dm)
    eras = cfg["korean_code"]["eras"]
    levels = quake.model().levels
    heights = cfg["height_classes"]
    out = []
    for i in rows:
        p1, p2 = math.radians(s.lat), math.radians(b.lat[i])
        a = (math.sin((p2 - p1) / 2) ** 2
             + math.cos(p1) * math.cos(p2) * math.sin(math.radians(b.lon[i] - s.lon) / 2) ** 2)
        rjb = max(2 * quake.EARTH_RADIUS_KM * math.asin(math.sqrt(min(a, 1.0))) - half, 0.0)
        r = math.sqrt(rjb * rjb + c["h"] ** 2)
        pga = math.exp(f_m + (c["c1"] + c["c2"] * (s.magnitude - 4.5)) * math.log(r) + c["c3"] * (r - 1.0))
        floors = max(int(b.floors[i]), 1)
        level = levels.index(cfg["korean_code"]["fallback_level"])
        for era in eras:
            if b.year[i] >= era["from_year"] and (floors >= era["min_floors"]
                                                  or b.floor_area_m2[i] >= era["min_floor_area_m2"]):
                level = levels.index(era["level"])
                break
        family = frag.families[b.family[i]]
        h = next(k for k, (_, upper, _) in enumerate(heights[family])
                 if floors <= upper or k == len(heights[family]) - 1)
        cls = frag.lookup[b.family[i], h, level]
        exceed = [0.5 * (1 + math.erf(math.log(pga / frag.medians[cls, k]) / frag.betas[cls] / math.sqrt(2)))
                  for k in range(4)]
        out.append([1 - exceed[0], exceed[0] - exceed[1], exceed[1] - exceed[2], exceed[2] - exceed[3], exceed[3]])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--buildings", type=int, default=500_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--sample", type=int, default=5_000)
    args = parser.parse_args()
    s = quake.QuakeScenario(lon=126.98, lat=37.55, magnitude=6.5, depth_km=10.0)
    b = generate(args.buildings)
    quake.model()  # load the data files outside the timing
    times = []
    for _ in range(args.runs):
        started = time.perf_counter()
        _, probs = quake.building_damage(b, s)
        per_dong = quake.damage_by_area(b.area, probs, 467)
        times.append(time.perf_counter() - started)
    sample = range(min(args.sample, args.buildings))
    started = time.perf_counter()
    looped = np.array(loop(b, s, sample))
    loop_s = time.perf_counter() - started
    assert np.allclose(looped, probs[: len(sample)], atol=1e-9), "the loop and the vectorised model disagree"
    per_record_loop = loop_s / len(sample)
    vec = median(times)
    print(f"earthquake damage, {args.buildings:,} buildings, M{s.magnitude} under central Seoul")
    print(f"  vectorised: median {vec:.2f} s over {args.runs} runs (min {min(times):.2f}, max {max(times):.2f}); "
          f"target ≤ 5 s: {'met' if vec <= 5 else 'NOT met'}")
    print(f"  baseline, plain-Python loop: {per_record_loop * 1e6:.1f} µs/record on {len(sample):,} records "
          f"→ {per_record_loop * args.buildings:.1f} s for all (scaled)")
    print(f"  speed-up: {per_record_loop * args.buildings / vec:.0f}×; expected buildings ≥ extensive: "
          f"{per_dong[:, 3:].sum():,.0f}; results equal on the sample")


if __name__ == "__main__":
    main()
