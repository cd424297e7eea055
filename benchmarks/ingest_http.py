"""HTTP bulk ingest vs the raw SQLite bulk insert of the same rows, in the same run.

The server is a real `haechi serve` process on the embedded default (SQLite, in-process bus);
the client streams one JSON array of N observations over 1,000 datastreams and waits for the
report, which comes after everything is committed: parse + QC + store + live state included.
The baseline inserts the same rows, already formatted, with one executemany per 5,000 rows into
an identical fresh database. Target (issue 3): ≥ 100,000 observations/s and ≥ half the raw rate.

    .venv/bin/python benchmarks/ingest_http.py [--n 200000] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import fresh_db, make_streams, median, observations, start_server, timed
from haechi.store import access
from haechi.store.sensing import _sqlite_time

BATCH = 5_000


def raw_insert(folder: Path, obs: list[dict]) -> float:
    """Seconds to insert the rows with sqlite3's executemany and nothing else."""
    engine = fresh_db(folder, "raw.db")
    make_streams(engine, 1000)
    from datetime import UTC, datetime

    now = _sqlite_time(datetime.now(UTC))
    rows = [(o["datastream_id"], _sqlite_time(datetime.fromisoformat(o["phenomenon_time"])), o["result"], "good", now)
            for o in obs]
    sql = ("INSERT INTO observations (datastream_id, phenomenon_time, result, result_quality, received_at) "
           "VALUES (?, ?, ?, ?, ?) ON CONFLICT (datastream_id, phenomenon_time) DO NOTHING")

    def insert():
        raw = engine.raw_connection()
        try:
            for start in range(0, len(rows), BATCH):
                raw.cursor().executemany(sql, rows[start:start + BATCH])
                raw.commit()
        finally:
            raw.close()

    seconds = timed(insert)
    engine.dispose()
    return seconds


def http_ingest(folder: Path, body: bytes) -> tuple[float, dict]:
    """Seconds from the first byte sent to the committed report, against a `haechi serve` process."""
    engine = fresh_db(folder, "http.db")
    make_streams(engine, 1000)
    with engine.begin() as conn:
        _, token = access.create_token(conn, "bench", "device")
    engine.dispose()
    server, url = start_server(folder / "http.db")
    try:

        def chunks():
            for start in range(0, len(body), 1 << 20):
                yield body[start:start + (1 << 20)]

        started = time.perf_counter()
        answer = httpx.post(f"{url}/api/v1/observations", content=chunks(), timeout=600,
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        seconds = time.perf_counter() - started
        answer.raise_for_status()
        return seconds, answer.json()
    finally:
        server.terminate()
        server.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    obs = observations(list(range(1, 1001)), args.n)
    body = orjson.dumps(obs)
    raws, https = [], []
    for run in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            raws.append(raw_insert(Path(tmp), obs))
            seconds, report = http_ingest(Path(tmp), body)
            https.append(seconds)
            assert report["stored"] == args.n, report
        print(f"run {run + 1}: raw {args.n / raws[-1]:,.0f}/s · HTTP pipeline {args.n / https[-1]:,.0f}/s")
    raw_rate, http_rate = args.n / median(raws), args.n / median(https)
    print(json.dumps({"observations": args.n, "body_mb": round(len(body) / 1e6, 1),
                      "raw_sqlite_per_s": round(raw_rate), "http_pipeline_per_s": round(http_rate),
                      "ratio": round(http_rate / raw_rate, 2)}, indent=2))


if __name__ == "__main__":
    main()
