"""Scale-out end to end: HTTP upload queued on NATS (202), a `haechi worker` stores it in PostgreSQL,
and the API's live state follows what the worker stored."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import LiveServer, service_unavailable
from sqlalchemy import create_engine, func, select

from haechi.api.app import create_app
from haechi.cities.load import load_city
from haechi.core.settings import Settings
from haechi.store import access, open_db, sensing
from haechi.store.schema import observations

NATS_URL = os.environ.get("HAECHI_TEST_NATS_URL", "nats://127.0.0.1:4222")


@pytest.fixture
def nats_up():
    import socket

    try:
        socket.create_connection(("127.0.0.1", 4222), timeout=2).close()
    except OSError as exc:
        service_unavailable("NATS", exc)


def test_upload_is_queued_then_stored_by_a_worker_and_shown_live(postgres_url, nats_up):
    engine = open_db(postgres_url)
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, token = access.create_token(conn, "gateway", "device")
        level = next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == "Jamsu Bridge water level")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=3)
    body = [{"datastream_id": level, "phenomenon_time": (start + timedelta(minutes=10 * i)).isoformat(),
             "result": 4.0 + i / 100} for i in range(12)]
    settings = Settings(database_url=postgres_url, bus_url=NATS_URL)
    worker = subprocess.Popen([sys.executable, "-m", "haechi.cli", "worker"],
                              env=os.environ | {"HAECHI_DATABASE_URL": postgres_url, "HAECHI_BUS_URL": NATS_URL},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with LiveServer(create_app(engine, settings)) as server:
            answer = httpx.post(f"{server.url}/api/v1/observations", json=body,
                                headers={"Authorization": f"Bearer {token}"}, timeout=30)
            assert answer.status_code == 202, answer.text
            assert answer.json()["received"] == 12
            count = select(func.count()).select_from(observations).where(observations.c.datastream_id == level)
            deadline = time.monotonic() + 60
            reader = create_engine(postgres_url)
            while time.monotonic() < deadline:
                with reader.connect() as conn:
                    if conn.execute(count).scalar_one() == 12:
                        break
                time.sleep(0.2)
            with reader.connect() as conn:
                assert conn.execute(count).scalar_one() == 12
            reader.dispose()
            for _ in range(100):  # the worker's observation.stored event reaches the API over NATS
                shown = {s["datastream_id"]: s for s in httpx.get(f"{server.url}/api/v1/state").json()}
                if level in shown and shown[level]["result"] == pytest.approx(4.11):
                    break
                time.sleep(0.1)
            assert shown[level]["result"] == pytest.approx(4.11)
    finally:
        worker.terminate()
        worker.wait(30)
        engine.dispose()
