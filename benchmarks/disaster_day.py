"""A disaster day on the public side: portal and feed reads, hazard reports, and 2,000 live streams at once.

`haechi serve` on PostgreSQL with the Seoul pack and three heavy-rain warnings in force holds N
clients on `/api/v1/stream?types=alert.>` (raw sockets in a client process, as
benchmarks/sse_fanout.py), while `wrk` (2 threads, 64 connections) sends the day's mix: 95 % reads
of what the citizen portal and feed readers fetch, 5 % hazard reports (`POST /api/v1/reports`
with a citizen token) from many addresses (`X-Forwarded-For`, which the server takes from
127.0.0.1, its default trusted proxy): citizens behind many addresses, none of them over the
limit. Beside them, one script floods reports from one address at a steady rate (`hey -q`): the
rate limit should refuse exactly what that address sends beyond its bucket, and nothing of the
citizens'. Halfway through, an operator issues an alert; every stream client should get it.

With `--overload`, instead: more clients than a process answers on a read from the database, against the
server as shipped (reads in flight bounded) and the same server with the bound out of reach, a
load balancer's probe of /readyz beside: what the bound sheds, and what it spares the rest.

Printed: req/s, p50 and p99 of the mix, its answers by status, the flood's answers beside what the
limit (haechi/api/shedding.toml) lets through, reports stored against 201s answered, and the
alert's arrival at the stream clients. Target (issue 17): zero 5xx.

    .venv/bin/python benchmarks/disaster_day.py [--workers 1] [--duration 30] [--streams 2000] [--overload]
                                                [--report-share 0.05]

Needs `wrk` and `hey` (Debian packages), PostgreSQL (and NATS for `--workers 2`).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
from sqlalchemy import create_engine, text

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import free_port
from benchmarks.sse_fanout import client_process
from benchmarks.surge import NATS, WARNINGS, _ms, drop_database, fresh_database, prepare, start, stop
from haechi.api.shedding import CONFIG as SHIPPED
from haechi.api.shedding import load as load_shedding

#: What a citizen's phone and a feed reader fetch on a disaster day (the portal page, its script, the
#: alerts it lists and their details, the districts, shelters nearby, the feeds and warnings in force).
READS = ["/portal", "{portal_js}", "/api/v1/alerts?limit=200", "/api/v1/alerts/{alert_id}",
         "/api/v1/areas?level=district", "/api/v1/places?kind=shelter&area=11680&limit=3",
         "/alerts.atom", "/alerts/11680.atom", "/api/v1/warnings"]
REPORT_SHARE = 0.05
#: Citizens' addresses: enough that none comes near its bucket in a run (a real crowd's spread).
CITIZEN_ADDRESSES = 20_000
FLOOD_RATE, FLOOD_CONNECTIONS = 20, 5  # reports a second from the one flooding address, over 5 connections
FLOOD_ADDRESS = "203.0.113.66"
REPORT = {"kind": "flooding", "description": "지하차도 침수, 차량 고립", "area_code": "11680", "lon": 127.03,
          "lat": 37.5}
ALERT = {"hazard": "heavy_rain", "level": "advisory", "value": 72.5, "area": "11650"}
#: Overload: far more clients at once than a process answers, on a read that goes to the database (about
#: 500 a second on this machine): 1,000 that ask again the moment they are answered, and 2,000 that
#: each ask at most every 2 s (people who read, then reload), 1,000 a second offered. Citizens read the
#: districts from memory now; staff (a token) still read them from the database on every call.
OVERLOAD_PATH = "/api/v1/areas?level=district"
OVERLOADS = {"1,000 clients asking again at once": ("-c", "1000"),
             "2,000 clients, each every 2 s at most": ("-c", "2000", "-q", "0.5")}

MIX_LUA = """
local reads, report_share, addresses, token, body = {}, 0, 1, "", ""
counts = {}
local threads = {}

function setup(thread) table.insert(threads, thread) end

function init(args)
  report_share, addresses, token, body = tonumber(args[1]), tonumber(args[2]), args[3], args[4]
  for i = 5, #args do reads[#reads + 1] = args[i] end
  math.randomseed(os.time() + tonumber(tostring({}):match("0x(%x+)"), 16) % 100000)
end

function request()
  if math.random() < report_share then
    local n = math.random(addresses)
    local address = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
    return wrk.format("POST", "/api/v1/reports", {["Content-Type"] = "application/json",
      ["Authorization"] = "Bearer " .. token, ["X-Forwarded-For"] = address}, body)
  end
  return wrk.format("GET", reads[math.random(#reads)], {["Accept-Encoding"] = "gzip"})
end

function response(status, headers, body) counts[status] = (counts[status] or 0) + 1 end

function done(summary, latency, requests)
  local total = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("counts")) do total[status] = (total[status] or 0) + n end
  end
  local parts = {}
  for status, n in pairs(total) do parts[#parts + 1] = string.format('"%d": %d', status, n) end
  io.write("STATUS {" .. table.concat(parts, ", ") .. "}\\n")
end
"""


def citizen_token(db: str) -> str:
    env = os.environ | {"HAECHI_DATABASE_URL": db}
    made = subprocess.run([sys.executable, "-m", "haechi.cli", "token", "create", "portal", "--role", "citizen"],
                          env=env, check=True, capture_output=True, text=True)
    return made.stdout.strip().splitlines()[-1]


def streams(port: int, count: int):
    """``count`` SSE clients in a client process; returns (process, connected, received, stop, results)."""
    ready, results, stop_event = mp.Queue(), mp.Queue(), mp.Event()
    received = mp.Value("q", 0, lock=False)
    process = mp.Process(target=client_process, args=(port, count, ready, received, stop_event, results))
    process.start()
    return process, ready.get(timeout=600), received, stop_event, results


def mix(url: str, reads: list[str], token: str, script: Path, args: argparse.Namespace) -> dict:
    out = subprocess.run(["wrk", "-t2", f"-c{args.connections}", f"-d{args.duration}s", "--latency", "--timeout", "5s",
                          "-s", str(script), url, "--", str(args.report_share), str(CITIZEN_ADDRESSES), token,
                          json.dumps(REPORT, ensure_ascii=False), *reads],
                         capture_output=True, text=True, check=True).stdout
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)\s*$", out, re.MULTILINE))
    failures = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50_ms": _ms(latency["50"]),
            "p99_ms": _ms(latency["99"]), "status": json.loads(re.search(r"^STATUS (.*)$", out, re.MULTILINE)[1]),
            "socket_errors": failures}


def hey(url: str, seconds: int, *options: str) -> dict:
    """hey's req/s, p50, p99 (ms), answers by status and failed connections."""
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-t", "30", *options, url],
                         capture_output=True, text=True, check=True).stdout
    latency = {p: float(s) * 1000 for p, s in re.findall(r"^\s+(50|99)%+ in ([\d.]+) secs", out, re.MULTILINE)}
    errors = re.search(r"Error distribution:\n((?:\s+\[\d+\].*\n?)*)", out)
    return {"rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out)[1]), "p50_ms": latency.get("50"),
            "p99_ms": latency.get("99"), "status": dict(re.findall(r"\[(\d+)\]\s+(\d+) responses", out)),
            "failed": sum(int(n) for n in re.findall(r"\[(\d+)\]", errors[1])) if errors else 0}


def overload(db: str, operator: str, args: argparse.Namespace) -> list[dict]:
    """``OVERLOADS`` on a read from the database, with the shipped bound on reads in flight and without it
    (the same server with the bound out of reach), a load balancer's probe on /readyz beside."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        unbounded = Path(tmp) / "unbounded.toml"
        unbounded.write_text(SHIPPED.read_text(encoding="utf-8").replace(
            f"max_in_flight = {load_shedding().max_in_flight}", "max_in_flight = 1000000000"), encoding="utf-8")
        for label, shedding in (("bounded (shipped)", None), ("unbounded", unbounded)):
            port = free_port()
            env = {"HAECHI_DATABASE_URL": db, "HAECHI_PORT": str(port)}
            env |= {"HAECHI_SHEDDING_FILE": str(shedding)} if shedding else {}
            server = start([sys.executable, "-m", "haechi.cli", "serve"], env, f"http://127.0.0.1:{port}/readyz")
            url = f"http://127.0.0.1:{port}"
            try:
                httpx.get(url + OVERLOAD_PATH).raise_for_status()
                for clients, options in OVERLOADS.items():
                    with ThreadPoolExecutor(1) as beside:
                        probe = beside.submit(hey, f"{url}/readyz", args.duration, "-c", "1", "-q", "10")
                        flooded = hey(url + OVERLOAD_PATH, args.duration, *options,
                                      "-H", f"Authorization: Bearer {operator}")
                    rows.append({"server": label, "clients": clients, **flooded, "probe": probe.result()})
                    print(json.dumps(rows[-1]), flush=True)
            finally:
                stop(server)
    return rows


def flood(url: str, token: str, seconds: int) -> dict:
    """One address sending ``FLOOD_RATE`` reports a second: the answers by status."""
    out = subprocess.run(["hey", "-z", f"{seconds}s", "-c", str(FLOOD_CONNECTIONS),
                          "-q", str(FLOOD_RATE / FLOOD_CONNECTIONS), "-m", "POST",
                          "-T", "application/json", "-H", f"Authorization: Bearer {token}",
                          "-H", f"X-Forwarded-For: {FLOOD_ADDRESS}", "-d", json.dumps(REPORT),
                          f"{url}/api/v1/reports"], capture_output=True, text=True, check=True).stdout
    return {status: int(n) for status, n in re.findall(r"\[(\d+)\]\s+(\d+) responses", out)}


def alert_during(url: str, operator: str, received, connected: int, at_s: float) -> dict:
    """Halfway through, issue an alert and time its arrival at every stream client."""
    time.sleep(at_s)
    sent = time.perf_counter()
    httpx.post(f"{url}/api/v1/alerts", json=ALERT, headers={"Authorization": f"Bearer {operator}"},
               timeout=60).raise_for_status()
    while received.value < connected and time.perf_counter() - sent < 60:
        time.sleep(0.002)
    return {"alert_reached": received.value, "alert_all_s": round(time.perf_counter() - sent, 2)}


def run(workers: int, db: str, operator: str, citizen: str, args: argparse.Namespace) -> dict:
    port = free_port()
    env = {"HAECHI_DATABASE_URL": db, "HAECHI_PORT": str(port), "HAECHI_HOST": "127.0.0.1"}
    if workers > 1:
        env["HAECHI_BUS_URL"] = NATS
    server = start([sys.executable, "-m", "haechi.cli", "serve", "--workers", str(workers)], env,
                   f"http://127.0.0.1:{port}/readyz")
    url = f"http://127.0.0.1:{port}"
    clients = None
    try:
        for warning in WARNINGS if not httpx.get(f"{url}/api/v1/warnings").json() else []:
            httpx.post(f"{url}/api/v1/alerts", json=warning, headers={"Authorization": f"Bearer {operator}"},
                       timeout=30).raise_for_status()
        portal_js = re.search(r'src="(/static/portal\.js[^"]*)"', httpx.get(f"{url}/portal").text)[1]
        alert_id = httpx.get(f"{url}/api/v1/alerts?limit=1").json()[0]["id"]
        reads = [r.format(portal_js=portal_js, alert_id=alert_id) for r in READS]
        for path in reads:
            httpx.get(url + path).raise_for_status()
        clients = streams(port, args.streams)
        connected, received = clients[1], clients[2]
        with tempfile.TemporaryDirectory() as tmp, ThreadPoolExecutor(2) as beside:
            script = Path(tmp) / "mix.lua"
            script.write_text(MIX_LUA, encoding="utf-8")
            flooded = beside.submit(flood, url, citizen, args.duration)
            alert = beside.submit(alert_during, url, operator, received, connected, args.duration / 2)
            measured = mix(url, reads, citizen, script, args)
        reports = create_engine(db)
        with reports.connect() as conn:
            stored = conn.execute(text("SELECT count(*) FROM citizen_reports")).scalar_one()
        reports.dispose()
        rule = next(r for r in load_shedding().writes if r.name == "hazard reports")
        return {"workers": workers, "streams": connected, **measured, "flood": flooded.result(), **alert.result(),
                "reports_stored": stored, "flood_allowed_by_limit": rule.burst + args.duration * rule.per_minute / 60}
    finally:
        if clients is not None:
            clients[3].set()
            clients[0].join(30)
            if clients[0].is_alive():
                clients[0].terminate()
        stop(server)


def summary(row: dict) -> str:
    answered = dict(row["status"])
    five = sum(n for s, n in answered.items() if s.startswith("5")) + sum(
        n for s, n in row["flood"].items() if s.startswith("5"))
    created = answered.get("201", 0) + row["flood"].get("201", 0)
    return "\n".join([
        f"{row['workers']} process(es), {row['streams']:,} SSE clients connected",
        (f"mix: {row['rps']:,.0f} req/s, p50 {row['p50_ms']:.1f} ms, p99 {row['p99_ms']:.1f} ms; "
         f"answers {answered}; socket errors {row['socket_errors']}"),
        f"citizens' reports: {answered.get('201', 0)} taken, {answered.get('429', 0)} refused (429)",
        (f"flood from one address at {FLOOD_RATE}/s: {row['flood']} (the limit lets "
         f"{row['flood_allowed_by_limit']:.0f} through in the run)"),
        (f"reports stored {row['reports_stored']}, 201s counted {created} (wrk does not count the answers still on "
         "their way when it stops)"),
        f"alert during the surge: {row.get('alert_reached')} of {row['streams']} clients in {row.get('alert_all_s')} s",
        f"5xx: {five}",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1])
    parser.add_argument("--duration", type=int, default=30, help="Seconds of the mix.")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--streams", type=int, default=2_000, help="SSE clients connected throughout.")
    parser.add_argument("--report-share", type=float, default=REPORT_SHARE,
                        help="Share of the mix that are hazard reports (0: reads alone, to compare).")
    parser.add_argument("--overload", action="store_true",
                        help="Instead: more clients than a process answers, with and without the bound.")
    args = parser.parse_args()
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} is missing: apt-get install {tool}")
    if args.overload:
        db = fresh_database()
        try:
            overload(db, prepare(db), args)
        finally:
            drop_database(db)
        return
    for workers in args.workers:
        db = fresh_database()
        try:
            operator = prepare(db)
            row = run(workers, db, operator, citizen_token(db), args)
        finally:
            drop_database(db)
        print(json.dumps(row), flush=True)
        print(summary(row), flush=True)


if __name__ == "__main__":
    main()
