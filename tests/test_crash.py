"""A `kill -9` of the server during ingest: every acknowledged observation is stored exactly once."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

import httpx
from sqlalchemy import func, select

from haechi.cities.load import load_city
from haechi.store import access, open_db, sensing
from haechi.store.schema import observations

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(days=30)


def _serve(db_url: str, port: int) -> subprocess.Popen:
    env = os.environ | {"HAECHI_DATABASE_URL": db_url, "HAECHI_PORT": str(port)}
    server = subprocess.Popen([sys.executable, "-m", "haechi.cli", "serve"], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(400):
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            time.sleep(0.05)
    server.kill()
    raise RuntimeError("haechi serve did not start")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_kill_9_during_ingest_loses_no_acknowledged_observation(tmp_path):
    db_url = f"sqlite:///{tmp_path / 'crash.db'}"
    engine = open_db(db_url)
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, token = access.create_token(conn, "gateway", "device")
        streams = [p["id"] for p in sensing.stream_profiles(conn)]
    auth = {"Authorization": f"Bearer {token}"}
    batches = [[{"datastream_id": streams[i % len(streams)], "result": 1.0 + (i % 7) / 10,
                 "phenomenon_time": (T0 + timedelta(minutes=n * 1000 + i)).isoformat()} for i in range(1000)]
               for n in range(60)]
    port = _free_port()
    url = f"http://127.0.0.1:{port}/api/v1/observations"
    server = _serve(db_url, port)
    acknowledged: list[int] = []

    def send():
        for n, batch in enumerate(batches):
            try:
                if httpx.post(url, json=batch, headers=auth, timeout=30).status_code == 200:
                    acknowledged.append(n)
            except httpx.TransportError:
                return  # the server is gone: this batch was never acknowledged

    sender = threading.Thread(target=send)
    sender.start()
    while len(acknowledged) < 10:  # kill it mid-stream, with requests in flight
        time.sleep(0.01)
    server.send_signal(signal.SIGKILL)
    server.wait()
    sender.join()
    assert 10 <= len(acknowledged) < len(batches)

    with engine.connect() as conn:
        rows = conn.execute(select(observations.c.datastream_id, observations.c.phenomenon_time)).all()
    stored = {(d, t) for d, t in rows}
    assert len(rows) == len(stored)  # exactly once
    for n in acknowledged:
        for o in batches[n]:
            assert (o["datastream_id"], datetime.fromisoformat(o["phenomenon_time"])) in stored

    # After a restart the client resends what was not acknowledged: nothing is doubled.
    server = _serve(db_url, port)
    try:
        for n in range(len(batches)):
            if n not in acknowledged:
                assert httpx.post(url, json=batches[n], headers=auth, timeout=30).status_code == 200
    finally:
        server.terminate()
        server.wait(10)
    with engine.connect() as conn:
        total = conn.execute(select(func.count()).select_from(observations)).scalar_one()
    assert total == sum(len(b) for b in batches)
    engine.dispose()
