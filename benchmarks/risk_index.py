"""Regional risk index for every dong of Seoul (target ≤ 100 ms).

Set-up (not timed): a fresh SQLite DB with the Seoul pack (467 legal dongs, 25 districts with
statistics, fire stations and hospitals) and one finished M6.0 earthquake simulation (the
earthquake hazard indicator). The indicator table is gathered once from the DB.

Timed, each run: (a) the index itself — normalisation, dimension scores, geometric aggregation and
ranking for all dongs (``risk.index.compute``); (b) the whole ``risk.assess`` without the
sensitivity analysis (DB reads, dong-in-polygon place counts, the index); (c) the 500-sample
sensitivity analysis. Baseline, same run: (a) in plain Python, dong by dong (``math`` only); its
risks must equal the vectorised ones.

    .venv/bin/python benchmarks/risk_index.py [--runs 20]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import fresh_db, median
from haechi import risk
from haechi.cities.load import load_city
from haechi.risk.data import gather
from haechi.risk.index import compute, load_method, sensitivity
from haechi.simulation import runs


def loop(method, values: np.ndarray) -> list[float]:
    """The index dong by dong in plain Python (the baseline)."""
    low, high = method.normalised_range
    cols = list(zip(*values.tolist(), strict=True))
    spans = []
    for col in cols:
        known = [v for v in col if not math.isnan(v)]
        spans.append((min(known), max(known)) if len(known) > 1 and max(known) > min(known) else None)
    out = []
    for row in values.tolist():
        dims: dict[str, list[float]] = {}
        for j, indicator in enumerate(method.indicators):
            if spans[j] is None or math.isnan(row[j]):
                continue
            lo, hi = spans[j]
            share = (row[j] - lo) / (hi - lo)
            share = 1 - share if indicator.direction < 0 else share
            total, mass = dims.get(indicator.dimension, [0.0, 0.0])
            dims[indicator.dimension] = [total + indicator.weight * (low + (high - low) * share),
                                         mass + indicator.weight]
        weights = {d: w for d, w in method.dimensions.items() if any(s and method.indicators[j].dimension == d
                                                                     for j, s in enumerate(spans))}
        if any(d not in dims for d in weights):
            out.append(float("nan"))
            continue
        log_sum = sum(w * math.log(dims[d][0] / dims[d][1]) for d, w in weights.items())
        out.append(math.exp(log_sum / sum(weights.values())))
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        engine = fresh_db(Path(folder))
        load_city(engine, "seoul")
        with engine.begin() as conn:
            run = runs.create(conn, "quake", runs.validate("quake", {"lon": 126.98, "lat": 37.55, "magnitude": 6.0,
                                                                   "depth_km": 10}), "benchmark")
        assert runs.execute(engine, run["id"])["status"] == "done"
        method = load_method()
        with engine.connect() as conn:
            raw = gather(conn, method, "dong")
        n = len(raw.areas.codes)
        index_s, assess_s, sens_s = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            result = compute(method, raw.values)
            index_s.append(time.perf_counter() - started)
        for _ in range(max(args.runs // 5, 3)):
            with engine.connect() as conn:
                started = time.perf_counter()
                risk.assess(conn, "dong", method=method, with_sensitivity=False)
                assess_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            sensitivity(method, result)
            sens_s.append(time.perf_counter() - started)
        loop_s = []
        for _ in range(args.runs):
            started = time.perf_counter()
            looped = loop(method, raw.values)
            loop_s.append(time.perf_counter() - started)
        assert np.allclose(looped, result.risk, equal_nan=True), "the loop and the vectorised index disagree"
        engine.dispose()
    used = sum(result.usable)
    print(f"risk index, {n} dongs × {len(method.indicators)} indicators ({used} with data)")
    print(f"  index (vectorised): median {median(index_s) * 1e3:.2f} ms over {args.runs} runs; "
          f"target ≤ 100 ms: {'met' if median(index_s) <= 0.1 else 'NOT met'}")
    print(f"  baseline, plain-Python loop: median {median(loop_s) * 1e3:.2f} ms "
          f"(vectorised is {median(loop_s) / median(index_s):.1f}× faster); results equal")
    print(f"  whole assessment from the DB (no sensitivity): median {median(assess_s) * 1e3:.0f} ms")
    print(f"  sensitivity, {method.sensitivity.get('samples')} weight samples + leave-one-out: "
          f"median {median(sens_s) * 1e3:.0f} ms")


if __name__ == "__main__":
    main()
