"""Health for orchestrators: /livez without I/O, /readyz on the DB with the schema revision kept
from start-up, /healthz as readiness; 503 when the DB is unreachable or behind the code."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from test_api_support import assert_problem

from haechi.api import system
from haechi.api.app import create_app
from haechi.core.settings import Settings
from haechi.store.db import make_engine, upgrade

#: Nothing listens on port 1: connecting is refused at once.
UNREACHABLE = "postgresql+psycopg://postgres@127.0.0.1:1/haechi"


@pytest.fixture
def every_call_checks(monkeypatch):
    """Readiness checks on every call instead of once a second, so what one call does shows."""
    monkeypatch.setattr(system, "READY_FOR_S", 0.0)


def test_live_ready_and_healthy_on_a_current_db(engine, every_call_checks):
    with TestClient(create_app(engine, Settings())) as client:
        assert client.get("/livez").json() == {"status": "ok"}
        assert client.get("/readyz").json() == {"status": "ok"}
        health = client.get("/healthz").json()
        assert health["status"] == "ok" and health["revision"] == health["head"] == system.code_head()
        assert client.head("/readyz").status_code == 200
        assert client.get("/readyz").headers["cache-control"] == "no-store"  # each probe must reach this process


def test_the_schema_revision_is_read_from_the_alembic_scripts_once_not_per_call(engine, every_call_checks,
                                                                                 monkeypatch):
    system.code_head.cache_clear()
    loads = []
    real = system.ScriptDirectory.from_config
    monkeypatch.setattr(system.ScriptDirectory, "from_config", lambda config: loads.append(1) or real(config))
    with TestClient(create_app(engine, Settings())) as client:  # start-up reads it
        for _ in range(5):
            assert client.get("/readyz").status_code == 200
            assert client.get("/healthz").status_code == 200
    assert len(loads) == 1


def test_readiness_fails_and_liveness_holds_when_the_db_is_unreachable(every_call_checks):
    """The DB went away after start-up: the process is alive (no restart helps), but takes no traffic."""
    unreachable = make_engine(UNREACHABLE)
    client = TestClient(create_app(unreachable, Settings()))
    assert client.get("/livez").status_code == 200
    assert "does not answer" in assert_problem(client.get("/readyz"), 503)["detail"]
    assert "does not answer" in assert_problem(client.get("/healthz"), 503)["detail"]
    unreachable.dispose()


def test_a_db_behind_the_code_is_not_ready_until_upgraded_without_a_restart(tmp_path, every_call_checks):
    bare = make_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    client = TestClient(create_app(bare, Settings()))
    assert "haechi db upgrade" in assert_problem(client.get("/readyz"), 503)["detail"]
    assert client.get("/livez").status_code == 200
    upgrade(bare)
    assert client.get("/readyz").status_code == 200
    bare.dispose()


def test_probes_share_one_check_a_second(engine, monkeypatch):
    checks = []
    real = system.Readiness._check
    monkeypatch.setattr(system.Readiness, "_check", lambda self: checks.append(1) or real(self))
    client = TestClient(create_app(engine, Settings()))
    for _ in range(20):
        assert client.get("/readyz").status_code == 200
    assert 1 <= len(checks) < 20  # a burst of probes is answered from the last check
