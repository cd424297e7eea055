"""Shared fixtures: the integrated DB on SQLite and on a real PostgreSQL server.

Tests that need a server skip with a clear message on a laptop without it; with ``CI=true``
they fail instead, because CI must prove them.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from haechi.store import open_db
from haechi.store.schema import metadata

# Machines are noisy (CI shares two cores): judge properties by their examples, not their speed.
settings.register_profile("haechi", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("haechi")

POSTGRES_URL = os.environ.get(
    "HAECHI_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
# The CAP signing key every app of the run makes on first use: one per run, outside the checkout.
os.environ.setdefault("HAECHI_CAP_SIGNING_KEY", str(Path(tempfile.mkdtemp(prefix="haechi-test-")) / "cap-key.pem"))


def service_unavailable(what: str, why: Exception | str) -> None:
    """Skip on a laptop, fail on CI: services are required there."""
    message = f"{what} is not reachable ({why})"
    if os.environ.get("CI") == "true":
        pytest.fail(message + " — required when CI=true")
    pytest.skip(message)


@contextlib.contextmanager
def fresh_postgres(prefix: str = "haechi_test", *, migrated: bool = True) -> Iterator[str]:
    """A new PostgreSQL database of its own (migrated unless told otherwise), dropped afterwards."""
    admin_url = make_url(POSTGRES_URL)
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach the server means "unavailable"
        service_unavailable("PostgreSQL", exc)
    url = admin_url.set(database=name).render_as_string(hide_password=False)
    if migrated:
        open_db(url).dispose()
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def postgres_url():
    """A fresh, migrated PostgreSQL database for this test session, dropped at the end."""
    with fresh_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory):
    """One migrated embedded DB for the session: each test starts from a copy of it, as empty and
    as migrated as a new one, without running every migration again."""
    path = tmp_path_factory.mktemp("template") / "haechi.db"
    open_db(f"sqlite:///{path}").dispose()  # the last connection closed: the WAL is folded in
    assert not Path(f"{path}-wal").exists()
    return path


def fresh_sqlite(template: Path, folder: Path) -> str:
    path = folder / "haechi.db"
    shutil.copyfile(template, path)
    return f"sqlite:///{path}"


@pytest.fixture
def seoul_api(engine):
    """The Seoul pack on both databases, served in-process (engine included): (client, tokens by role
    for a device and an operator, engine)."""
    from fastapi.testclient import TestClient

    from haechi.api.app import create_app
    from haechi.cities.load import load_city
    from haechi.store import access

    load_city(engine, "seoul")
    with engine.begin() as conn:
        tokens = {role: access.create_token(conn, f"{role}-1", role)[1] for role in ("device", "operator")}
    with TestClient(create_app(engine), raise_server_exceptions=False) as client:
        yield client, tokens, engine


CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, through Playwright: the page tests' browser (one per module)."""
    if not os.path.exists(CHROMIUM):
        service_unavailable("Chromium", f"{CHROMIUM} is not installed (Debian package chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"])
        yield browser
        browser.close()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path):
    """The URL of an empty, migrated integrated DB — once on SQLite, once on PostgreSQL."""
    if request.param == "sqlite":
        return fresh_sqlite(request.getfixturevalue("sqlite_template"), tmp_path)
    url = request.getfixturevalue("postgres_url")
    _empty_postgres(url)
    return url


def _empty_postgres(url: str) -> None:
    engine = create_engine(url)
    # The geography count goes on (triggers bump it on TRUNCATE): an empty database still has it.
    names = ", ".join(f'"{t.name}"' for t in metadata.sorted_tables if t.name != "geography_version")
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
    engine.dispose()


@pytest.fixture
def engine(db_url):
    from haechi.store.db import make_engine

    engine = make_engine(db_url)
    yield engine
    engine.dispose()


@pytest.fixture
def sqlite_engine(tmp_path, sqlite_template):
    """An embedded-default engine only, for tests that need not run twice."""
    engine = open_db(fresh_sqlite(sqlite_template, tmp_path))
    yield engine
    engine.dispose()


class LiveServer:
    """A real uvicorn server for an app, in a thread, on a free port (for SSE and stock clients)."""

    def __init__(self, app) -> None:
        import socket
        import threading

        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> LiveServer:  # noqa: PYI034 - a plain class, not meant for subclassing
        import time

        self.thread.start()
        for _ in range(500):
            if self.server.started:
                return self
            time.sleep(0.01)
        raise RuntimeError("the test server did not start")

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


class SseListener:
    """Reads a server's SSE stream in a thread, collecting (event, data) until ``done(seen)`` holds."""

    def __init__(self, url: str, done, timeout: float = 60) -> None:
        import threading

        self.url, self.done, self.timeout = url, done, timeout
        self.seen: list[tuple[str | None, dict]] = []
        self.connected = threading.Event()
        self.thread = threading.Thread(target=self._listen, daemon=True)

    def _listen(self) -> None:
        import json

        import httpx

        with httpx.stream("GET", self.url, timeout=self.timeout) as response:
            event = None
            for line in response.iter_lines():
                self.connected.set()
                if line.startswith("event: "):
                    event = line[7:]
                elif line.startswith("data: "):
                    self.seen.append((event, json.loads(line[6:])))
                    if self.done(self.seen):
                        return

    def __enter__(self) -> SseListener:  # noqa: PYI034 - a plain class, not meant for subclassing
        self.thread.start()
        assert self.connected.wait(10), "the SSE stream did not connect"
        return self

    def __exit__(self, *exc) -> None:
        self.thread.join(self.timeout)
