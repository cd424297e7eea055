"""One runtime composes the capabilities: a process runs its roles of every part, in order, and
stops them in reverse; a part that fails to start takes down only what had started before it."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from haechi.alerts.channels import AlertDispatcher
from haechi.api.app import create_app
from haechi.core.settings import Settings
from haechi.model.events import ALERT_SENT, OBSERVATION_STORED, WARNING_CHANGED
from haechi.runtime import Context, Job, Part, Role, Runtime, Service
from haechi.runtime.part import load
from haechi.runtime.parts import PARTS
from haechi.warnings.service import WarningService

ROOT = Path(__file__).resolve().parents[1]
PATIENCE_S = 30


def quiet_settings(**fields) -> Settings:
    """Settings with no bus and no brokers, whatever the environment says."""
    return Settings(bus_url=None, mqtt_url=None, care_mqtt_url=None, **fields)


async def run_for_a_moment(runtime: Runtime, check) -> None:
    await runtime.start()
    try:
        check()
    finally:
        await runtime.stop()


def test_the_engine_role_alone_runs_the_stateful_services_and_serves_no_http(sqlite_engine):
    context = Context.of(sqlite_engine, quiet_settings())
    runtime = Runtime(PARTS, {Role.ENGINE}, context)

    def check() -> None:
        assert isinstance(runtime["warnings"], WarningService)
        assert isinstance(runtime["dispatcher"], AlertDispatcher)
        assert {"warnings", "forecaster", "dispatcher", "care", "simulation_books"} <= set(runtime.started)
        assert runtime["mqtt"] is None and runtime["ingest_queue"] is None  # adapters are the API's
        assert runtime.routers() == []  # no HTTP
        assert {j.name for j in runtime.jobs()} == {"silence-watch", "alert-refresh", "care-clock", "heartbeat",
                                                    "public-feeds"}
        # the services listen: stored observations reach the warnings, warnings reach care, alerts the webhooks
        assert all(context.bus.wants(e) for e in (OBSERVATION_STORED, WARNING_CHANGED, ALERT_SENT))

    asyncio.run(run_for_a_moment(runtime, check))
    assert runtime.started == []
    assert not any(context.bus.wants(e) for e in (OBSERVATION_STORED, WARNING_CHANGED, ALERT_SENT))


def test_the_api_role_alone_serves_http_and_runs_no_warnings(sqlite_engine):
    app = create_app(sqlite_engine, quiet_settings(), roles={Role.API})
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert app.state.warnings is None and app.state.dispatcher is None and app.state.care_mqtt is None
        assert app.state.care is not None  # care's routes work in an API process: the service object is there
        assert not app.state.bus.wants(OBSERVATION_STORED)  # nothing in this process judges readings
        assert [j.name for j in app.state.runtime.jobs()] == ["heartbeat"]  # its row in the cluster table


def test_the_app_serves_every_part_router_and_runs_api_and_engine(sqlite_engine):
    app = create_app(sqlite_engine, quiet_settings())
    documented = set(app.openapi()["paths"])
    for part in PARTS:
        for ref in part.routers:  # every part's routes are served (and documented)
            paths = {r.path for r in load(ref).routes if getattr(r, "include_in_schema", False)}
            assert not paths or paths & documented, (part.name, ref)
    with TestClient(app) as client:
        assert client.get("/api/v1/warnings").status_code == 200
        assert isinstance(app.state.warnings, WarningService) and app.state.dispatcher is not None
        assert app.state.sink.queued is False  # no bus: readings are stored in this process
    assert app.state.runtime.started == []


class Recorder:
    def __init__(self, name: str, log: list[str], fail: bool = False) -> None:
        self.name, self.log, self.fail = name, log, fail

    async def start(self) -> None:
        if self.fail:
            raise RuntimeError(f"{self.name} cannot start")
        self.log.append(f"start {self.name}")

    def stop(self) -> None:  # plain or async, both do
        self.log.append(f"stop {self.name}")


def toy_parts(log: list[str], failing: str | None = None) -> list[Part]:
    def part(name: str, roles=frozenset({Role.ENGINE})) -> Part:
        return Part(name, services=(Service(name, lambda c: Recorder(name, log, fail=name == failing), roles),))

    return [part("first"), part("api only", frozenset({Role.API})), part("second"), part("third")]


def test_parts_start_in_order_and_stop_in_reverse(sqlite_engine):
    log: list[str] = []
    runtime = Runtime(toy_parts(log), {Role.ENGINE}, Context.of(sqlite_engine, quiet_settings()))
    asyncio.run(run_for_a_moment(runtime, lambda: None))
    assert log == ["start first", "start second", "start third", "stop third", "stop second", "stop first"]
    assert runtime["api only"] is None


def test_a_part_failing_to_start_stops_those_already_started(sqlite_engine):
    log: list[str] = []
    runtime = Runtime(toy_parts(log, failing="second"), {Role.ENGINE}, Context.of(sqlite_engine, quiet_settings()))
    with pytest.raises(RuntimeError, match="second cannot start"):
        asyncio.run(runtime.start())
    assert log == ["start first", "stop first"]
    assert runtime.started == []


def test_a_failing_job_is_logged_and_runs_again_next_period(sqlite_engine, caplog):
    runs = {"async": 0, "thread": 0}
    both_again = asyncio.Event()

    def count(kind: str) -> None:
        runs[kind] += 1
        if runs[kind] == 1:
            raise ValueError(f"{kind} job broke")

    async def in_loop(_c: Context) -> None:
        count("async")
        if min(runs.values()) >= 3:
            both_again.set()

    def in_thread(_c: Context) -> None:
        count("thread")
        assert threading.current_thread() is not threading.main_thread()

    parts = [Part("jobs", jobs=(Job("in-loop", 0.01, in_loop, frozenset({Role.ENGINE})),
                                Job("in-thread", lambda s: 0.01, in_thread, frozenset({Role.ENGINE})),
                                Job("elsewhere", 0.01, in_loop, frozenset({Role.API}))))]
    runtime = Runtime(parts, {Role.ENGINE}, Context.of(sqlite_engine, quiet_settings()))

    async def scenario() -> None:
        await runtime.start()
        try:
            await asyncio.wait_for(both_again.wait(), PATIENCE_S)
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    assert "async job broke" in caplog.text and "thread job broke" in caplog.text
    assert [j.name for j in runtime.jobs()] == ["in-loop", "in-thread"]


def test_haechi_engine_runs_without_http_and_stops_on_sigterm(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("HAECHI_")}
    env |= {"HAECHI_DATABASE_URL": f"sqlite:///{tmp_path / 'engine.db'}", "COLUMNS": "200"}
    process = subprocess.Popen([sys.executable, "-m", "haechi.cli", "engine"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        seen = []
        for line in process.stdout:  # the runtime says what it runs once it has started it all
            seen.append(line)
            if "running engine:" in line:
                break
        assert "warnings" in seen[-1] and "alert-refresh" in seen[-1], "".join(seen)
        process.send_signal(signal.SIGTERM)
        out, _ = process.communicate(timeout=PATIENCE_S)
        assert process.returncode == 0, "".join(seen) + out
        assert "no bus" in "".join(seen)
    finally:
        process.kill()
