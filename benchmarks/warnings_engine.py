"""Rule-evaluation throughput of the warnings engine alone, beside the floor of any Python rule engine.

1,000 realistic streams with the official criteria (``load_criteria()``): PM10 and PM2.5 hourly
means at air stations (fine and Asian dust), 10-minute rainfall at rain gauges (3 h and 12 h
sums), and 10-minute water levels at river gauges, half of them at the two gauges with flood
stages. Values follow a seeded random walk with episodes that cross the thresholds, so warnings
are issued, escalated and lifted along the way. Observations are pre-built
``(stream_id, time, value, quality)`` tuples in arrival (time) order; only the loop of
``RuleEngine.observe`` calls is timed, on a fresh engine each run.

Baseline, same observations, same run: a loop that does only a dict lookup of the stream's
threshold and one float comparison per observation.

    .venv/bin/python benchmarks/warnings_engine.py [--n 1000000] [--streams 1000] [--runs 3] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import pstats
import random
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import T0, median
from haechi.warnings.criteria import load_criteria
from haechi.warnings.engine import RuleEngine, StreamInfo

STEP = timedelta(minutes=10)
#: Gauges with flood stages in the criteria (Hangang Bridge, and the second staged Han River gauge).
STAGED_GAUGES = ("1018683", "1018662")
#: Seoul's 25 district codes (11110 Jongno-gu … 11740 Gangdong-gu).
DISTRICTS = ("11110", "11140", "11170", "11200", "11215", "11230", "11260", "11290", "11305", "11320",
             "11350", "11380", "11410", "11440", "11470", "11500", "11530", "11545", "11560", "11590",
             "11620", "11650", "11680", "11710", "11740")


def plan_streams(count: int) -> dict[int, StreamInfo]:
    """30 % PM10 and 30 % PM2.5 (hourly), 25 % rainfall and 15 % water level (10-minute)."""
    infos = {}
    for i in range(count):
        sid = i + 1
        share = i % 20
        district = DISTRICTS[i % len(DISTRICTS)] + "10100"
        if share < 6:
            infos[sid] = StreamInfo(sid, "pm10", district, thing_id=10_000 + i // 2, interval_s=3600.0)
        elif share < 12:
            infos[sid] = StreamInfo(sid, "pm25", district, thing_id=10_000 + i // 2, interval_s=3600.0)
        elif share < 17:
            infos[sid] = StreamInfo(sid, "rainfall", district, thing_id=20_000 + i, interval_s=600.0)
        else:
            water = i // 20 * 3 + share - 17  # the how-many-th water-level stream
            ref = STAGED_GAUGES[water // 2 % 2] if water % 2 == 0 else f"10{i:05d}"  # half at staged gauges
            infos[sid] = StreamInfo(sid, "water_level", district, thing_id=30_000 + i, place_kind="gauge",
                                    place_ref=ref, interval_s=600.0)
    return infos


class _Walk:
    """A stream's value: a calm random walk, with occasional episodes that cross the thresholds."""

    def __init__(self, prop: str, rng: random.Random) -> None:
        self.prop, self.rng = prop, rng
        self.base = {"pm10": 40.0, "pm25": 20.0, "rainfall": 0.0, "water_level": 3.5}[prop]
        self.peak = {"pm10": (180.0, 900.0), "pm25": (90.0, 200.0), "rainfall": (3.0, 25.0),
                     "water_level": (8.8, 11.5)}[prop]
        self.value = self.base
        self.episode = 0  # steps left in the current episode
        self.target = self.base

    def next(self) -> float:
        rng = self.rng
        if self.episode == 0 and rng.random() < 0.004:
            self.episode, self.target = rng.randint(12, 60), rng.uniform(*self.peak)
        if self.episode:
            self.episode -= 1
            goal = self.target
        else:
            goal = self.base
        if self.prop == "rainfall":  # 10-minute accumulations: dry, or rain around the episode's rate
            self.value = max(0.0, rng.gauss(goal, goal / 3)) if goal else 0.0
        elif self.prop == "water_level":  # rivers move slowly: at most ~0.3 m per 10 minutes
            self.value += max(-0.3, min(0.3, (goal - self.value) * 0.15 + rng.gauss(0, 0.02)))
        else:
            self.value = max(1.0, self.value + (goal - self.value) * 0.4 + rng.gauss(0, self.base * 0.1))
        return round(self.value, 2)


def build_observations(infos: dict[int, StreamInfo], n: int, seed: int = 7) -> list[tuple]:
    """``n`` observations in arrival order: 10-minute streams every step, hourly ones every 6th."""
    rng = random.Random(seed)
    walks = {sid: _Walk(info.property, rng) for sid, info in infos.items()}
    hourly = [sid for sid, info in infos.items() if info.interval_s == 3600.0]
    ten_min = [sid for sid, info in infos.items() if info.interval_s != 3600.0]
    obs: list[tuple] = []
    step = 0
    while len(obs) < n:
        at = T0 + step * STEP
        due = ten_min + hourly if step % 6 == 0 else ten_min
        obs.extend((sid, at, walks[sid].next(), "good") for sid in due)
        step += 1
    return obs[:n]


def run_engine(criteria, infos: dict[int, StreamInfo], obs: list[tuple]) -> tuple[float, Counter]:
    engine = RuleEngine(criteria, infos.get)
    observe = engine.observe
    kinds: Counter = Counter()
    gc.collect()
    started = time.perf_counter()
    for stream_id, at, value, quality in obs:
        changes = observe(stream_id, at, value, quality)
        if changes:
            kinds.update(c.kind for c in changes)
    return time.perf_counter() - started, kinds


def run_baseline(infos: dict[int, StreamInfo], obs: list[tuple]) -> tuple[float, int]:
    """The floor: per observation, one dict lookup of the stream's threshold and one float comparison."""
    first = {"pm10": 150.0, "pm25": 75.0, "rainfall": 60.0, "water_level": 8.5}
    thresholds = {sid: first[info.property] for sid, info in infos.items()}
    get = thresholds.get
    over = 0
    gc.collect()
    started = time.perf_counter()
    for stream_id, _at, value, quality in obs:
        if quality != "good":
            continue
        threshold = get(stream_id)
        if threshold is not None and value >= threshold:
            over += 1
    return time.perf_counter() - started, over


def profile(criteria, infos, obs: list[tuple], top: int = 25) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    run_engine(criteria, infos, obs)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="also print a cProfile of one run (on stderr)")
    args = parser.parse_args()
    criteria = load_criteria()
    infos = plan_streams(args.streams)
    obs = build_observations(infos, args.n)
    engine_s, baseline_s, kinds = [], [], Counter()
    for _ in range(args.runs):
        seconds, kinds = run_engine(criteria, infos, obs)
        engine_s.append(seconds)
        baseline_s.append(run_baseline(infos, obs)[0])
    engine_rate, baseline_rate = args.n / median(engine_s), args.n / median(baseline_s)
    mix = Counter(infos[sid].property for sid, *_ in obs)
    print(json.dumps({
        "observations": args.n, "streams": args.streams, "runs": args.runs,
        "mix": dict(mix), "changes": dict(kinds),
        "baseline_obs_per_s": round(baseline_rate), "engine_obs_per_s": round(engine_rate),
        "ratio": round(engine_rate / baseline_rate, 3),
        "engine_us_per_obs": round(median(engine_s) / args.n * 1e6, 2),
        "engine_runs_s": [round(s, 3) for s in engine_s], "baseline_runs_s": [round(s, 3) for s in baseline_s],
        "target_obs_per_s": 200_000, "target_met": engine_rate >= 200_000,
    }, indent=2))
    if args.profile:
        print(profile(criteria, infos, obs), file=sys.stderr)


if __name__ == "__main__":
    main()
