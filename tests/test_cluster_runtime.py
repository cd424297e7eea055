"""The runtime gates the engine role on the lead: a standby runs nothing stateful, a leader that
loses the lead stops the engine at once; the election lock itself on a real PostgreSQL."""

from __future__ import annotations

import asyncio

import psycopg
import pytest
from cluster_support import fresh_postgres
from sqlalchemy import text

from haechi.core.settings import Settings
from haechi.runtime import Context, Job, LeadershipLost, Part, Role, Runtime, Service
from haechi.runtime.leader import RETRY_S, Always, PostgresLeadership, elect
from haechi.runtime.one_at_a_time import OneAtATime
from haechi.runtime.part import ALL, ENGINE, LIVE
from haechi.store import cluster, open_db

PATIENCE_S = 30


def quiet_settings(**fields) -> Settings:
    return Settings(**{"bus_url": None, "mqtt_url": None, "care_mqtt_url": None} | fields)


class Recorder:
    def __init__(self, name: str, log: list[str]) -> None:
        self.name, self.log = name, log

    def start(self) -> None:
        self.log.append(f"start {self.name}")

    def stop(self) -> None:
        self.log.append(f"stop {self.name}")


class Ballot:
    """A leadership decided by the test: the lead is given with ``win`` and taken with ``lose``."""

    def __init__(self) -> None:
        self.held, self.won, self.lost = False, asyncio.Event(), asyncio.Event()

    async def acquire(self, *, wait: bool = True) -> bool:
        if wait:
            await self.won.wait()
        self.held = self.won.is_set()
        return self.held

    async def until_lost(self) -> str:
        await self.lost.wait()
        self.held = False
        return "the test took it"

    async def release(self) -> None:
        self.held = False


def parts(log: list[str]) -> list[Part]:
    def service(name: str, roles, standby: bool = False) -> Service:
        return Service(name, lambda c: Recorder(name, log), roles, standby=standby)

    async def tick(_c: Context) -> None:
        log.append("tick")

    return [Part("platform", services=(service("membership", ALL, standby=True), service("nats", LIVE))),
            Part("warnings", services=(service("warnings", ENGINE),), jobs=(Job("refresh", 0.01, tick, ENGINE),))]


async def wait_until(check) -> None:
    for _ in range(PATIENCE_S * 100):
        if check():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("never")


def test_a_standby_runs_only_its_membership_until_it_leads_then_the_engine(sqlite_engine):
    log: list[str] = []
    ballot = Ballot()
    runtime = Runtime(parts(log), {Role.ENGINE}, Context.of(sqlite_engine, quiet_settings()), leadership=ballot)

    async def scenario() -> None:
        await runtime.start()  # returns at once: the election goes on in the background
        try:
            await asyncio.sleep(0.1)
            assert runtime.started == ["membership"] and log == ["start membership"]  # no bus, no warnings, no jobs
            assert runtime["warnings"] is None and not runtime.leading
            ballot.won.set()
            await wait_until(lambda: "tick" in log)
            assert runtime.started == ["membership", "nats", "warnings"] and runtime.leading
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    assert log[-3:] == ["stop warnings", "stop nats", "stop membership"]


def test_a_leader_losing_the_lead_stops_the_engine_at_once_and_the_run_ends_with_the_reason(sqlite_engine):
    log: list[str] = []
    ballot = Ballot()
    ballot.won.set()
    runtime = Runtime(parts(log), {Role.ENGINE}, Context.of(sqlite_engine, quiet_settings()), leadership=ballot)

    async def scenario() -> None:
        stop = asyncio.Event()
        running = asyncio.create_task(runtime.run(stop))
        await wait_until(lambda: "tick" in log)
        ballot.lost.set()
        with pytest.raises(LeadershipLost, match="the test took it"):
            await asyncio.wait_for(running, PATIENCE_S)
        assert not stop.is_set()  # it ended on its own

    asyncio.run(scenario())
    engine_stopped = log.index("stop warnings")
    assert log[engine_stopped:] == ["stop warnings", "stop nats", "stop membership"]
    assert "tick" not in log[engine_stopped:]  # the engine's jobs stopped first


def test_an_api_beside_the_engine_serves_while_its_engine_waits_for_the_lead(sqlite_engine):
    log: list[str] = []
    ballot = Ballot()
    runtime = Runtime(parts(log), {Role.API, Role.ENGINE}, Context.of(sqlite_engine, quiet_settings()),
                      leadership=ballot)

    async def scenario() -> None:
        await runtime.start()
        try:
            assert runtime.started == ["membership", "nats"]  # the API's bus does not wait
        finally:
            await runtime.stop()

    asyncio.run(scenario())


def test_who_elects_an_engine(sqlite_engine, postgres_url):
    def leadership(engine, roles, bus_url):
        return elect(Context.of(engine, quiet_settings(bus_url=bus_url)), frozenset(roles))

    assert leadership(sqlite_engine, {Role.API}, None) is None  # no engine role, nothing to lead
    assert isinstance(leadership(sqlite_engine, {Role.ENGINE}, "nats://x:4222"), Always)  # embedded: one process
    pg = open_db(postgres_url)
    assert isinstance(leadership(pg, {Role.ENGINE}, None), Always)  # no bus: no other engine hears its events
    assert isinstance(leadership(pg, {Role.ENGINE}, "nats://x:4222"), PostgresLeadership)
    pg.dispose()


async def eventually(attempt) -> None:
    """``attempt()`` comes true, tried every 10 ms like a (faster) standby."""
    for _ in range(PATIENCE_S * 100):
        if await attempt():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{attempt} never came true")


@pytest.mark.postgres
def test_the_engine_lock_is_held_by_one_session_and_freed_when_it_ends():
    async def scenario(url: str) -> None:
        engine = open_db(url)
        first, second = cluster.AdvisoryLock(engine, "first"), cluster.AdvisoryLock(engine, "second")
        try:
            assert await first.try_acquire() is True
            assert await first.try_acquire() is True  # re-entrant for its own session
            assert await second.try_acquire() is False
            await first.watch(period_s=0.1, timeout_s=5)  # its session lives and answers: still ours
            await first.close()
            await eventually(second.try_acquire)  # the session ended, the lock with it (as its backend exits)
            with pytest.raises(ConnectionError):
                await first.watch(period_s=0.1, timeout_s=5)
            watching = asyncio.ensure_future(second.watch(period_s=10 * PATIENCE_S, timeout_s=5))
            with engine.connect() as conn:  # the server ends the holder's session (a restart does too)
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = 'second'"))
            with pytest.raises(psycopg.OperationalError):  # seen at once, not at the end of the period
                await asyncio.wait_for(watching, PATIENCE_S)
        finally:
            await first.close()
            await second.close()
            engine.dispose()

    with fresh_postgres() as url:
        asyncio.run(scenario(url))


def test_every_process_is_in_the_cluster_table_while_it_runs_heartbeating_and_leaves_it_at_a_clean_stop(
        sqlite_engine):
    from haechi.runtime.membership import Membership, heartbeat

    membership = Part("platform", services=(Service("membership", Membership, ALL, standby=True),),
                      jobs=(Job("heartbeat", 0.01, heartbeat, ALL, standby=True),))
    context = Context.of(sqlite_engine, quiet_settings(), member="engine-test")
    runtime = Runtime([membership], {Role.API, Role.ENGINE}, context)

    def members() -> list[dict]:
        with sqlite_engine.connect() as conn:
            return cluster.members(conn)

    async def scenario() -> None:
        await runtime.start()
        try:
            [row] = members()
            assert (row["name"], row["roles"], row["leader"], row["lag"]) == ("engine-test", "api+engine", True, None)
            first_seen = row["seen_at"]
            await wait_until(lambda: members()[0]["seen_at"] > first_seen)  # heartbeats
        finally:
            await runtime.stop()

    asyncio.run(scenario())
    assert members() == []


@pytest.mark.postgres
def test_a_service_one_replica_runs_is_taken_over_by_the_standby_when_the_runners_lock_session_ends():
    """The MQTT ingest's runner (``one_at_a_time``): two replicas, one runs the service, the other
    stands by; the server ends the runner's lock session (a database restart does): it stops the
    service at once, the standby starts it, and the first, now a standby, does not take it back."""
    log: list[str] = []

    async def scenario(url: str) -> None:
        engine = open_db(url)
        def replica(name: str) -> OneAtATime:
            lock = cluster.AdvisoryLock(engine, f"haechi-test {name}", key=cluster.MQTT_INGEST_LOCK_KEY)
            return OneAtATime(lambda: Recorder(name, log), lock, "the test service", name)

        replicas = {name: replica(name) for name in ("a", "b")}
        try:
            await replicas["a"].start()
            await wait_until(lambda: replicas["a"].running is not None)
            await replicas["b"].start()
            await asyncio.sleep(2 * RETRY_S)  # the standby tries the lock, twice
            assert replicas["b"].running is None and log == ["start a"]
            with engine.connect() as conn:
                conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE application_name = 'haechi-test a'"))
            await wait_until(lambda: replicas["b"].running is not None)
            assert replicas["a"].running is None and log == ["start a", "stop a", "start b"]
            await asyncio.sleep(2 * RETRY_S)
            assert (replicas["a"].takeovers, replicas["b"].takeovers) == (1, 1)  # a stands by now
        finally:
            for replica in replicas.values():
                await replica.stop()
            engine.dispose()
        assert log == ["start a", "stop a", "start b", "stop b"]

    with fresh_postgres() as url:
        asyncio.run(scenario(url))
