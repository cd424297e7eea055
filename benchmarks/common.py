"""Shared set-up for benchmarks: a fresh embedded DB with many datastreams, a PostgreSQL database of a
run's own, and timing helpers."""

from __future__ import annotations

import contextlib
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from sqlalchemy import Engine, create_engine, insert, text
from sqlalchemy.engine import make_url

from haechi.cities.provision import save_catalogue
from haechi.store import open_db
from haechi.store.schema import datastreams, sensors, things

T0 = datetime(2024, 7, 1, tzinfo=UTC)
POSTGRES_URL = os.environ.get("HAECHI_BENCH_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def fresh_db(folder: Path, name: str = "bench.db") -> Engine:
    path = folder / name
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    return open_db(f"sqlite:///{path}")


@contextlib.contextmanager
def postgres_database(kind: str) -> Iterator[str]:
    """The URL of a fresh, migrated PostgreSQL database of this run's own (advisory locks and
    counts are per database), dropped afterwards."""
    admin_url = make_url(POSTGRES_URL)
    name = f"haechi_{kind}_{uuid.uuid4().hex[:8]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        url = admin_url.set(database=name).render_as_string(hide_password=False)
        open_db(url).dispose()
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def make_streams(engine: Engine, count: int, prop: str = "water_level") -> list[int]:
    """``count`` datastreams of one property, made in bulk (one thing and sensor each would be slow)."""
    with engine.begin() as conn:
        prop_id = save_catalogue(conn)[prop]
        thing = conn.execute(insert(things).values(name="bench", description="")).inserted_primary_key[0]
        sensor = conn.execute(insert(sensors).values(name="bench", description="", encoding_type="text/plain",
                                                     metadata="")).inserted_primary_key[0]
        conn.execute(insert(datastreams), [
            {"name": f"s{i}", "description": "", "thing_id": thing, "sensor_id": sensor,
             "observed_property_id": prop_id, "unit_name": "metre", "unit_symbol": "m",
             "unit_definition": "ucum:m",
             "observation_type": "http://www.opengis.net/def/observationType/OGC-OM/2.0/OM_Measurement"}
            for i in range(count)])
        return list(conn.execute(datastreams.select().with_only_columns(datastreams.c.id)).scalars())


def observations(streams: list[int], n: int, start: datetime = T0) -> list[dict]:
    """``n`` plausible observations spread round-robin over ``streams``, 10 minutes apart per stream."""
    return [observation(streams, i, start) for i in range(n)]


def observation(streams: list[int], i: int, start: datetime = T0) -> dict:
    """The ``i``-th of :func:`observations`, made on its own (a long background makes them as it sends)."""
    per = len(streams)
    return {"datastream_id": streams[i % per],
            "phenomenon_time": (start + timedelta(minutes=10 * (i // per))).isoformat(),
            "result": 3.0 + ((i * 7919) % 1000) / 1000}


def timed(fn: Callable[[], object]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def median(values: list[float]) -> float:
    return statistics.median(values)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(db: Path, **settings: str) -> tuple[subprocess.Popen, str]:
    """A real `haechi serve` process on ``db`` (extra ``HAECHI_*`` settings by name), once it answers /healthz."""
    port = free_port()
    env = os.environ | {"HAECHI_DATABASE_URL": f"sqlite:///{db}", "HAECHI_PORT": str(port)}
    env |= {f"HAECHI_{name.upper()}": value for name, value in settings.items()}
    server = subprocess.Popen([sys.executable, "-m", "haechi.cli", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    wait_healthy(server, url, tries=600)
    return server, url


def wait_healthy(server: subprocess.Popen, url: str, tries: int) -> None:
    """Wait until the server at ``url`` answers /healthz (every 50 ms); stop it and raise if it never does."""
    for _ in range(tries):
        try:
            if httpx.get(f"{url}/healthz").status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.05)
    server.terminate()
    raise RuntimeError(f"the server at {url} did not answer /healthz")
