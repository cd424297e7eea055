"""Memory of the live state for 100,000 datastreams (target: under 300 MB), beside an empty baseline.

Fills a Pipeline's live state and profile cache exactly as ingest does (a real Pipeline over a
fresh SQLite DB with 100,000 datastreams, one stored reading each) and reports the Python heap
(tracemalloc) it holds, and the process's resident memory before and after.

    .venv/bin/python benchmarks/live_state_memory.py [--streams 100000]
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import tempfile
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import fresh_db, make_streams, observations
from haechi.ingest import parse
from haechi.ingest.pipeline import Pipeline


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--streams", type=int, default=100_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        engine = fresh_db(Path(tmp))
        streams = make_streams(engine, args.streams)
        readings = [parse.reading(o) for o in observations(streams, args.streams)]
        gc.collect()
        before_rss = rss_mb()
        tracemalloc.start()
        pipeline = Pipeline(engine)
        for start in range(0, len(readings), 5_000):
            pipeline.store(readings[start:start + 5_000], "bench")
        del readings
        gc.collect()
        heap, _ = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert len(pipeline.state) == args.streams
        print(json.dumps({
            "datastreams": args.streams,
            "live_state_and_profiles_mb": round(heap / 1e6, 1),
            "bytes_per_stream": round(heap / args.streams),
            "process_rss_before_mb": round(before_rss, 1),
            "process_rss_after_mb": round(rss_mb(), 1),
            "target_mb": 300,
        }, indent=2))


if __name__ == "__main__":
    main()
