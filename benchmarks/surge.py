"""A disaster-day surge on the public side: wrk against `haechi serve`, beside the framework's floor.

One `haechi serve` process on a loaded Seoul pack (PostgreSQL, a few warnings in force and their
alerts) is driven by `wrk` (2 threads, 64 connections, 10 s) on each public endpoint, one after
the other. In the same run, a bare Starlette app answering "ok" under the same uvicorn is driven
the same way, just before each endpoint (the machine's load drifts): the framework's floor on
this machine, which the ratio compares with. With
`--workers 2` both run as two processes on one port; the Haechi processes are then API replicas
on NATS (`HAECHI_BUS_URL`), as `haechi serve --workers` requires. Requests say
`Accept-Encoding: gzip`, as browsers, CDNs and feed readers do. Target (issue 17): every
endpoint at ≥ 0.5× the floor with p99 < 50 ms.

    .venv/bin/python benchmarks/surge.py [--workers 1 2] [--duration 10] [--connections 64] [--endpoints PATH ...]

Needs `wrk` (Debian: `apt-get install wrk`), PostgreSQL (and NATS for `--workers 2`).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import free_port
from haechi.api.serving import NO_DELAY_HTTP

ROOT = Path(__file__).resolve().parents[1]
POSTGRES = os.environ.get("HAECHI_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
NATS = os.environ.get("HAECHI_BENCH_NATS_URL", "nats://127.0.0.1:4222")
#: The issue's target: a share of the bare framework's rate, and the slowest 1 % of answers.
TARGET_RATIO, TARGET_P99_MS = 0.5, 50.0
#: What a citizen, an aggregator and a load balancer read on a disaster day; the static URL is
#: the room script's fingerprinted one, read from the page as a browser would.
ENDPOINTS = ["/alerts.atom", "/api/v1/warnings", "/portal", "{room_js}", "/openapi.json", "/healthz", "/livez",
             "/readyz", "/api/v1/areas?level=district", "/api/v1/places?kind=shelter"]
#: Warnings issued by hand before the run, so the feeds and the warnings in force are not empty.
#: What browsers, CDNs and feed readers send (wrk sends no Accept-Encoding of its own).
ACCEPT_ENCODING = "gzip"
WARNINGS = [{"hazard": "heavy_rain", "level": "warning", "area": code, "value": 95.0}
            for code in ("11680", "11590", "11110")]


async def floor_app(scope, receive, send):
    """The floor: a bare Starlette app answering "ok" (built on first import by uvicorn)."""
    await _floor(scope, receive, send)


def _make_floor():
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def ok(request):  # async: a plain function would cost a worker-thread hop
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/", ok)])


_floor = _make_floor()


def fresh_database() -> str:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    name = f"haechi_surge_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(POSTGRES).set(database=name).render_as_string(hide_password=False)


def drop_database(url: str) -> None:
    admin = create_engine(POSTGRES, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def prepare(db: str) -> str:
    """Load the Seoul pack into ``db`` and make an operator token (returned)."""
    env = os.environ | {"HAECHI_DATABASE_URL": db}
    subprocess.run([sys.executable, "-m", "haechi.cli", "city", "load", "seoul"], env=env, check=True,
                   stdout=subprocess.DEVNULL)
    made = subprocess.run([sys.executable, "-m", "haechi.cli", "token", "create", "surge", "--role", "operator",
                           "--center", "situation_room"], env=env, check=True, capture_output=True, text=True)
    return made.stdout.strip().splitlines()[-1]  # printed alone on the last line


def start(command: list[str], env: dict[str, str], probe: str) -> subprocess.Popen:
    process = subprocess.Popen(command, env=os.environ | env, cwd=ROOT, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(probe, timeout=2).status_code == 200:
                return process
        except httpx.TransportError:
            pass
        if process.poll() is not None:
            raise RuntimeError(f"{command} exited with {process.returncode}")
        time.sleep(0.2)
    process.terminate()
    raise RuntimeError(f"{command} did not answer {probe}")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(20)
    except subprocess.TimeoutExpired:
        process.kill()


def wrk(url: str, args: argparse.Namespace) -> dict[str, float]:
    """Requests per second, p50 and p99 in ms, and answers that were not 2xx/3xx (or never came)."""
    out = subprocess.run(["wrk", f"-t{args.threads}", f"-c{args.connections}", f"-d{args.duration}s", "--latency",
                          "--timeout", "5s", "-H", f"Accept-Encoding: {ACCEPT_ENCODING}", url],
                         capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    if len(latency) < 2:
        raise RuntimeError(f"wrk answered no latencies for {url}:\n{out}")
    errors = sum(int(n) for n in re.findall(r"(?:Non-2xx or 3xx responses|connect|read|write|timeout)[: ]+(\d+)", out))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50_ms": _ms(latency["50"]),
            "p99_ms": _ms(latency["99"]), "errors": errors}


def _ms(figure: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", figure).groups()
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


def run(workers: int, db: str, token: str, args: argparse.Namespace) -> list[dict]:
    port, floor_port = free_port(), free_port()
    env = {"HAECHI_DATABASE_URL": db, "HAECHI_PORT": str(port), "HAECHI_HOST": "127.0.0.1"}
    if workers > 1:
        env["HAECHI_BUS_URL"] = NATS
    same_server = ["--http", NO_DELAY_HTTP] if workers > 1 else []  # as `haechi serve --workers` runs uvicorn
    floor = start([sys.executable, "-m", "uvicorn", "benchmarks.surge:floor_app", "--port", str(floor_port),
                   "--log-level", "warning", "--workers", str(workers), *same_server], {},
                  f"http://127.0.0.1:{floor_port}/")
    server = start([sys.executable, "-m", "haechi.cli", "serve", "--workers", str(workers)], env,
                   f"http://127.0.0.1:{port}/readyz")
    url = f"http://127.0.0.1:{port}"
    try:
        for warning in WARNINGS if not httpx.get(f"{url}/api/v1/warnings").json() else []:
            httpx.post(f"{url}/api/v1/alerts", json=warning, headers={"Authorization": f"Bearer {token}"},
                       timeout=30).raise_for_status()
        room_js = re.search(r'src="(/static/room\.js\?v=[0-9a-f]+)"', httpx.get(f"{url}/room").text)[1]
        rows = []
        for path in args.endpoints:  # the floor just before each endpoint: the machine's load drifts
            floor_row = wrk(f"http://127.0.0.1:{floor_port}/", args)
            path = path.format(room_js=room_js)
            httpx.get(url + path).raise_for_status()
            wrk(url + path, argparse.Namespace(**{**vars(args), "duration": 1}))  # every process has rendered it once
            rows.append({"endpoint": path, **wrk(url + path, args), "floor_rps": floor_row["rps"],
                         "floor_p99_ms": floor_row["p99_ms"]})
            print(json.dumps({"workers": workers, **rows[-1]}), flush=True)
        return rows
    finally:
        stop(server)
        stop(floor)


def table(workers: int, rows: list[dict]) -> str:
    floors = sorted(row["floor_rps"] for row in rows)
    lines = [(f"\n### {workers} process{'es' if workers > 1 else ''} (floor: {floors[0]:,.0f}–{floors[-1]:,.0f} req/s, "
             f"median {floors[len(floors) // 2]:,.0f})\n"),
             "| endpoint | req/s | p50 | p99 | floor just before | × floor | errors | target |",
             "|---|---:|---:|---:|---:|---:|---:|---|"]
    for row in rows:
        ratio = row["rps"] / row["floor_rps"]
        met = "met" if ratio >= TARGET_RATIO and row["p99_ms"] < TARGET_P99_MS else "**not met**"
        lines.append(f"| `{row['endpoint']}` | {row['rps']:,.0f} | {row['p50_ms']:.1f} ms | {row['p99_ms']:.1f} ms "
                     f"| {row['floor_rps']:,.0f} (p99 {row['floor_p99_ms']:.1f} ms) | {ratio:.2f} | {row['errors']} "
                     f"| {met} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--duration", type=int, default=10, help="Seconds per endpoint.")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--endpoints", nargs="+", default=ENDPOINTS, help="Only these (default: all public ones).")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("wrk is missing: apt-get install wrk")
    db = fresh_database()
    try:
        token = prepare(db)
        results = {workers: run(workers, db, token, args) for workers in args.workers}
    finally:
        drop_database(db)
    print(f"\nwrk -t{args.threads} -c{args.connections} -d{args.duration}s, one endpoint at a time")
    for workers, rows in results.items():
        print(table(workers, rows))


if __name__ == "__main__":
    main()
