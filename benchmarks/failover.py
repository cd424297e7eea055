"""Failover time: from a `kill -9` of the active engine to the standby leading, five times.

Set-up: a fresh PostgreSQL database (the engines' advisory lock is per database) and a NATS
prefix of this run's own; two real `haechi engine` processes. Each round kills the leader with
SIGKILL (at a random moment, 2-3 s after the standby stood by) and times, from the signal,
(1) the standby taking the engine lock (its log's "leading:" line) and (2) its engine running
(the runtime's "running engine:" line, every service started and subscribed); then a fresh
standby is started for the next round. Times are read as the lines arrive on the processes'
pipes, so they include the log's own latency.

    .venv/bin/python benchmarks/failover.py [--rounds 5]

PostgreSQL from HAECHI_BENCH_POSTGRES_URL (default postgresql+psycopg://postgres@127.0.0.1:5432/test),
NATS from HAECHI_BENCH_NATS_URL (default nats://127.0.0.1:4222).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import random
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from benchmarks.common import postgres_database
from haechi.bus.nats import EventStream, connect_nats

ROOT = Path(__file__).resolve().parents[1]
NATS_URL = os.environ.get("HAECHI_BENCH_NATS_URL", "nats://127.0.0.1:4222")
WAIT_S = 120.0  # a process start on a busy machine; only ever waited on
#: A kill comes at any moment of the standby's 1 s retry cycle, not just after a try: each round
#: waits a random 2-3 s (seeded) after the standby first stood by.
SETTLE_S = (2.0, 3.0)


class Engine:
    """A `haechi engine --name NAME` subprocess; a thread notes when each output line arrives."""

    def __init__(self, name: str, env: dict[str, str]) -> None:
        self.name = name
        self.popen = subprocess.Popen([sys.executable, "-m", "haechi.cli", "engine", "--name", name], cwd=ROOT,
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        self.lines: list[tuple[float, str]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.popen.stdout:
            self.lines.append((time.monotonic(), line))

    def seen(self, text: str) -> float:
        """When a line with ``text`` arrived (time.monotonic()), waiting for it."""
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            at = next((at for at, line in list(self.lines) if text in line), None)
            if at is not None:
                return at
            time.sleep(0.01)
        raise RuntimeError(f"engine {self.name} never said {text!r}:\n" + "".join(line for _, line in self.lines))

    def kill_9(self) -> float:
        at = time.monotonic()
        self.popen.send_signal(signal.SIGKILL)
        self.popen.wait()
        return at

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            self.popen.wait(WAIT_S)


def rounds(count: int, database_url: str, prefix: str) -> list[tuple[float, float]]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAECHI_")}
    env |= {"HAECHI_DATABASE_URL": database_url, "HAECHI_BUS_URL": NATS_URL, "HAECHI_BUS_PREFIX": prefix,
            "PYTHONUNBUFFERED": "1"}
    leader = Engine("engine-0", env)
    leader.seen("running engine:")
    engines, figures, chance = [leader], [], random.Random(15)
    try:
        for n in range(1, count + 1):
            standby = Engine(f"engine-{n}", env)
            engines.append(standby)
            standby.seen(f"standing by: engine {leader.name} leads")
            time.sleep(chance.uniform(*SETTLE_S))
            killed = leader.kill_9()
            locked = standby.seen(f"leading: engine {standby.name}") - killed
            running = standby.seen("running engine:") - killed
            figures.append((locked, running))
            print(f"round {n}: killed {leader.name}; {standby.name} took the lock in {locked:.2f} s, "
                  f"its engine ran in {running:.2f} s", flush=True)
            leader = standby
    finally:
        for engine in engines:
            engine.stop()
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    prefix = f"haechi_failover_{uuid.uuid4().hex[:8]}"
    with postgres_database("failover") as url:
        try:
            figures = rounds(args.rounds, url, prefix)
        finally:
            asyncio.run(_delete_stream(EventStream.of(prefix).name))
    locked, running = [f[0] for f in figures], [f[1] for f in figures]
    print(f"failover after kill -9 of the active engine, {len(figures)} rounds: lock taken median "
          f"{statistics.median(locked):.2f} s (max {max(locked):.2f}), engine running median "
          f"{statistics.median(running):.2f} s (max {max(running):.2f})")


async def _delete_stream(stream: str) -> None:
    nc = await connect_nats(NATS_URL, "haechi-bench-cleanup")
    try:
        with contextlib.suppress(Exception):  # nothing was published: no stream to delete
            await nc.jetstream().delete_stream(stream)
    finally:
        await nc.close()


if __name__ == "__main__":
    main()
