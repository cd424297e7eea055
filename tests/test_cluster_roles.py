"""Roles: `haechi serve` with a bus is a stateless API (no warnings engine: a second replica must not
double the alerts), without one it runs everything; /healthz and /metrics say which, and whether
the process leads the engines."""

from __future__ import annotations

import re

import httpx
import pytest
from cluster_support import Cluster, free_port, fresh_postgres, nats_prefix, until
from fastapi.testclient import TestClient

from haechi.api.app import create_app, serve_roles
from haechi.core.settings import Settings
from haechi.runtime import Role
from haechi.store import open_db
from haechi.warnings.service import WarningService

pytestmark = pytest.mark.postgres


def settings(database_url: str, prefix: str | None) -> Settings:
    bus = {"bus_url": "nats://127.0.0.1:4222", "bus_prefix": prefix} if prefix else {"bus_url": None}
    return Settings(database_url=database_url, mqtt_url=None, care_mqtt_url=None, **bus)


def metric(text: str, name: str) -> dict[str, float]:
    """The series of one metric: {labels: value}."""
    found = {}
    for line in text.splitlines():
        if m := re.fullmatch(rf"{name}(\{{.*\}})? (\S+)", line):
            found[m.group(1) or ""] = float(m.group(2))
    return found


def test_serve_with_a_bus_is_a_stateless_api_and_without_one_runs_the_engine_too(postgres_url):
    engine = open_db(postgres_url)
    with nats_prefix() as prefix:
        assert serve_roles(settings(postgres_url, prefix)) == {Role.API}
        api = create_app(engine, settings(postgres_url, prefix))  # what `haechi serve` builds with HAECHI_BUS_URL
        with TestClient(api) as client:
            assert api.state.warnings is None and api.state.dispatcher is None and api.state.forecaster is None
            assert api.state.runtime.jobs() and {j.name for j in api.state.runtime.jobs()} == {"heartbeat"}
            assert api.state.sink.queued is True  # readings go to the workers
            health = client.get("/healthz").json()
            assert (health["roles"], health["leader"]) == (["api"], False)
            shown = client.get("/metrics").text
            assert metric(shown, "haechi_leader") == {"": 0.0}
            assert metric(shown, "haechi_consumer_lag") == {}  # an API holds no durable consumer
    alone = create_app(engine, settings(postgres_url, None))  # `haechi serve`, embedded
    assert serve_roles(alone.state.settings) == {Role.API, Role.ENGINE}
    with TestClient(alone) as client:
        assert isinstance(alone.state.warnings, WarningService) and alone.state.dispatcher is not None
        health = client.get("/healthz").json()
        assert (health["roles"], health["leader"]) == (["api", "engine"], True)  # the one process leads
        shown = client.get("/metrics").text
        member = alone.state.runtime.context.member
        assert metric(shown, "haechi_process_info") == {f'{{name="{member}",role="api"}}': 1.0,
                                                        f'{{name="{member}",role="engine"}}': 1.0}
        assert metric(shown, "haechi_leader") == {"": 1.0}
    engine.dispose()


def test_a_real_haechi_serve_with_a_bus_shows_its_role_in_metrics_and_in_the_cluster():
    with fresh_postgres() as url, nats_prefix() as prefix:
        cluster = Cluster(url, prefix)
        try:
            port = free_port()
            serve = cluster.run("serve", "--port", str(port))
            base = f"http://127.0.0.1:{port}"
            until(lambda: _answers(f"{base}/healthz"))
            shown = httpx.get(f"{base}/metrics").text
            [labels] = metric(shown, "haechi_process_info")  # one role: the API alone
            assert 'role="api"' in labels
            assert metric(shown, "haechi_leader") == {"": 0.0}
            [member] = until(lambda: list(cluster.members().values()))
            assert (member["roles"], member["leader"], member["pid"]) == ("api", False, serve.popen.pid)
            assert f'name="{member["name"]}"' in labels
        finally:
            cluster.close()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False
