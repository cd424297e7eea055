"""An alert's delivery to N concurrent SSE clients of one `haechi serve` process (the embedded default).

Set-up: a fresh SQLite DB with the Seoul pack and an operator token; one server process (the app
`haechi serve` runs, its bus noting when it is handed each alert); N clients on
`/api/v1/stream?types=alert.>` (raw asyncio sockets, spread over client processes of at most
5,000 each, connecting 500 at a time). Each round an operator issues a heavy-rain advisory by hand
for a district (`POST /api/v1/alerts`; another district each round, as an alert's identifier says
what it announces), then cancels it (`POST /api/v1/warnings/{id}/cancel`): two `alert.sent`
events, each timed to its arrival at each client from the moment the bus is handed it (the
fan-out) and from the moment its POST is sent (the operator's view: storing and composing the
alert too). perf_counter is the system's monotonic clock, shared by the processes.
The next alert waits until every client has the last one. One warm-up round is not counted.

    .venv/bin/python benchmarks/sse_fanout.py [--clients 1000 10000] [--rounds 10] [--gc-threshold 100000]

``--gc-threshold`` tries the server with Python's youngest-generation GC threshold raised (a
what-if for `haechi serve`): each SSE connection holds ~200 objects the collector tracks, so with
10,000 clients a full collection scans about 2 million of them and stops the process for a second
or more, and the default threshold (700) promotes enough short-lived objects of every fan-out
into the old generation to bring one on every few alerts.

Needs ``ulimit -n`` above the clients of one process (5,000) in each, and above N for the server.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import free_port, fresh_db, wait_healthy
from haechi.cities.load import load_city
from haechi.model.events import ALERT_SENT
from haechi.store import access

PER_PROCESS = 5_000  # clients one client process holds (a file descriptor each)
CONNECTING = 500  # connections opened at once: under the server's listen backlog (2,048)
MARK = b"event: alert.sent"
ALERT = {"hazard": "heavy_rain", "level": "advisory", "value": 72.5}
WAIT_S = 120.0


def prepare(folder: Path) -> tuple[Path, str]:
    db = folder / "fanout.db"
    engine = fresh_db(folder, db.name)
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, token = access.create_token(conn, "situation room", "operator", center="situation_room")
    engine.dispose()
    return db, token


def serve(db: Path, port: int, times: Path, gc_threshold: int | None) -> None:
    """The app `haechi serve` runs (embedded default), its bus noting when it is handed each alert."""
    import gc

    import uvicorn

    from haechi.api.app import create_app
    from haechi.bus.memory import InProcessBus
    from haechi.cli import tune_interpreter
    from haechi.store import open_db

    class TimedBus(InProcessBus):
        async def publish(self, event) -> None:
            if event.type == ALERT_SENT:
                with times.open("a") as out:
                    out.write(f"{time.perf_counter()}\n")
            await super().publish(event)

    tune_interpreter()  # as `haechi serve` runs: its GC thresholds and GIL switch interval
    if gc_threshold:
        gc.set_threshold(gc_threshold, 50, 100)
    app = create_app(open_db(f"sqlite:///{db}"), bus=TimedBus())
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


def start(db: Path, times: Path, gc_threshold: int | None) -> tuple[subprocess.Popen, int]:
    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve", str(db), str(port), str(times),
                               str(gc_threshold or 0)], stdout=subprocess.DEVNULL)
    wait_healthy(server, f"http://127.0.0.1:{port}", tries=1200)
    return server, port


class Client(asyncio.Protocol):
    """One SSE client: notes when each ``alert.sent`` arrives, parsing nothing else."""

    def __init__(self, request: bytes, connected: asyncio.Future, tally: list[int]) -> None:
        self.request, self.connected, self.tally = request, connected, tally
        self.arrivals: list[float] = []
        self.tail = b""

    def connection_made(self, transport) -> None:
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.perf_counter()
        if not self.connected.done():
            self.connected.set_result(None)
        window = self.tail + data  # a mark may be cut between two reads
        for _ in range(window.count(MARK)):
            self.arrivals.append(now)
            self.tally[0] += 1
        self.tail = window[-(len(MARK) - 1):]

    def connection_lost(self, exc) -> None:
        if not self.connected.done():
            self.connected.set_exception(ConnectionError("closed before the stream began"))


def client_process(port: int, count: int, ready, received, stop, results) -> None:
    """Hold ``count`` SSE clients until ``stop``; send their arrival times back on ``results``."""
    resource.setrlimit(resource.RLIMIT_NOFILE, (resource.getrlimit(resource.RLIMIT_NOFILE)[1],) * 2)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        request = (f"GET /api/v1/stream?types=alert.> HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                   "Accept: text/event-stream\r\n\r\n").encode()
        tally, clients = [0], []
        gate = asyncio.Semaphore(CONNECTING)

        async def connect() -> None:
            async with gate:
                connected = loop.create_future()
                _, client = await loop.create_connection(lambda: Client(request, connected, tally), "127.0.0.1", port)
                await connected
                clients.append(client)

        await asyncio.gather(*(connect() for _ in range(count)))
        ready.put(len(clients))
        while not stop.is_set():
            received.value = tally[0]
            await asyncio.sleep(0.005)
        results.put([c.arrivals for c in clients])

    asyncio.run(main())


def run(n: int, rounds: int, gc_threshold: int | None = None) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        db, token = prepare(Path(tmp))
        times = Path(tmp) / "published.txt"
        server, port = start(db, times, gc_threshold)
        url = f"http://127.0.0.1:{port}"
        procs = []
        try:
            ready, results, stop = mp.Queue(), mp.Queue(), mp.Event()
            sizes = [PER_PROCESS] * (n // PER_PROCESS) + ([n % PER_PROCESS] if n % PER_PROCESS else [])
            counters = [mp.Value("q", 0, lock=False) for _ in sizes]
            procs = [mp.Process(target=client_process, args=(port, size, ready, counter, stop, results))
                     for size, counter in zip(sizes, counters, strict=True)]
            started = time.perf_counter()
            for p in procs:
                p.start()
            connected = sum(ready.get(timeout=WAIT_S * 5) for _ in procs)
            connect_s = time.perf_counter() - started
            operator = {"Authorization": f"Bearer {token}"}
            sent, answered = [], []
            with httpx.Client(base_url=url, headers=operator, timeout=WAIT_S) as http:
                districts = [a["code"] for a in http.get("/api/v1/areas", params={"level": "district"}).json()]
                for district in districts[:rounds + 1]:  # round 0 warms up
                    sent.append(time.perf_counter())
                    issued = http.post("/api/v1/alerts", json=ALERT | {"area": district})
                    answered.append(time.perf_counter() - sent[-1])
                    issued.raise_for_status()
                    wait_all(counters, connected * len(sent))
                    warning = next(w for w in http.get("/api/v1/warnings").json() if w["area_code"] == district)
                    sent.append(time.perf_counter())
                    cancelled = http.post(f"/api/v1/warnings/{warning['id']}/cancel")
                    answered.append(time.perf_counter() - sent[-1])
                    cancelled.raise_for_status()
                    wait_all(counters, connected * len(sent))
            stop.set()
            arrivals = [a for _ in procs for a in results.get(timeout=WAIT_S)]
            published = [float(line) for line in times.read_text().split()]
        finally:
            stop.set()
            for p in procs:
                p.join(10)
                if p.is_alive():
                    p.terminate()
            server.terminate()
            server.wait(30)
    assert len(published) == len(sent)
    fanout = percentiles([(client[k] - published[k]) * 1000 for client in arrivals for k in range(2, len(sent))])
    by_post = percentiles([(client[k] - sent[k]) * 1000 for client in arrivals for k in range(2, len(sent))])
    everyone = [max(client[k] for client in arrivals) - published[k] for k in range(2, len(sent))]
    return {"clients": connected, "alerts": len(sent) - 2, "connect_s": round(connect_s, 1),
            "publish_to_receipt_ms": fanout, "post_to_receipt_ms": by_post,
            "publish_to_last_client_ms": [round(v * 1000) for v in everyone],
            "post_answered_p50_ms": round(statistics.median(answered[2:]) * 1000, 1)}


def percentiles(values: list[float]) -> dict[str, float]:
    q = statistics.quantiles(values, n=100)
    return {"p50": round(q[49], 1), "p99": round(q[98], 1), "max": round(max(values), 1)}


def wait_all(counters, total: int) -> None:
    deadline = time.perf_counter() + WAIT_S
    while sum(c.value for c in counters) < total:
        if time.perf_counter() > deadline:
            raise RuntimeError(f"only {sum(c.value for c in counters)} of {total} alerts arrived")
        time.sleep(0.002)


def main() -> None:
    if sys.argv[1:2] == ["--serve"]:
        serve(Path(sys.argv[2]), int(sys.argv[3]), Path(sys.argv[4]), int(sys.argv[5]))
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, nargs="+", default=[1_000, 10_000])
    parser.add_argument("--rounds", type=int, default=10, help="at most 24: Seoul's districts less one")
    parser.add_argument("--gc-threshold", type=int, default=None, help="the server's gen-0 GC threshold")
    args = parser.parse_args()
    for n in args.clients:
        print(run(n, args.rounds, args.gc_threshold), flush=True)


if __name__ == "__main__":
    main()
