"""The live stream resumes after a reconnect (Last-Event-ID), on the same process or another replica
over NATS, and a slow client never holds up the publisher or the other clients.

Events are published straight on the app's bus, as the services do; the clients are real HTTP
clients of a real server (uvicorn), reading the SSE text.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import time
import uuid

import httpx
import nats.js.errors
import pytest
from conftest import LiveServer, SseListener, service_unavailable

from haechi.api import sensing
from haechi.api.app import create_app
from haechi.bus.memory import InProcessBus
from haechi.bus.nats import BusUnavailable, EventStream, NatsBus, connect_nats
from haechi.core.events import Event, Lagged
from haechi.core.settings import Settings
from haechi.model.events import INCIDENT_CHANGED, OBSERVATION_STORED, SENSOR_SILENT, event
from haechi.runtime import Role
from haechi.store import open_db

NATS_URL = os.environ.get("HAECHI_TEST_NATS_URL", "nats://127.0.0.1:4222")
TYPES = "observation.>,sensor.>"
WAIT_S = 30.0  # only ever waited on, never asserted


def silent(name: str) -> Event:
    return event(SENSOR_SILENT, {"datastream_id": 1, "name": name, "last_time": None})


def stored(*results: float) -> Event:
    return event(OBSERVATION_STORED, {"source": "test", "observations": [
        {"datastream_id": 1, "phenomenon_time": f"2024-07-01T00:{i:02d}:00+00:00", "result": r, "quality": "good"}
        for i, r in enumerate(results)]})


def said(e: tuple[str | None, str, dict]) -> str | float:
    """What an SSE event says, in short: a silent stream's name, an observation's result, else its name."""
    _, name, data = e
    return data["name"] if name == SENSOR_SILENT else data["result"] if name == "observation" else name


class Sse:
    """One SSE connection read as EventSource does: ``(id, event, data)`` per event, and the id to resume from."""

    def __init__(self, url: str, last_event_id: str | None = None) -> None:
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self._stream = httpx.stream("GET", url, headers=headers, timeout=WAIT_S)
        self.last_id = last_event_id
        self.ended = False

    def __enter__(self) -> Sse:  # noqa: PYI034 - a plain class, not meant for subclassing
        self._lines = self._stream.__enter__().iter_lines()
        return self

    def __exit__(self, *exc) -> None:
        self._stream.__exit__(*exc)

    def connected(self) -> Sse:
        """Read the connect block (a comment, and the id to resume from when starting afresh)."""
        block = []
        while line := next(self._lines):
            block.append(line)
        assert block[0] == ": connected", block
        self.last_id = next((b[4:] for b in block if b.startswith("id: ")), self.last_id)
        return self

    def take(self, count: int) -> list[tuple[str | None, str, dict]]:
        """The next ``count`` events (fewer only if the server ends the stream)."""
        events: list[tuple[str | None, str, dict]] = []
        block: dict[str, str] = {}
        while len(events) < count:
            line = next(self._lines, None)
            if line is None:
                self.ended = True
                return events
            if line:
                field, _, value = line.partition(":")
                block[field] = block.get(field, "") + value.removeprefix(" ")
                continue
            if "id" in block:  # an id sets the place to resume from, with or without data
                self.last_id = block["id"]
            if "data" in block:
                events.append((block.get("id"), block.get("event", "message"), json.loads(block["data"])))
            block = {}
        return events


class Looped:
    """The app, remembering the loop uvicorn runs it on, so a test publishes on its bus from outside."""

    def __init__(self, app) -> None:
        self.app, self.loop = app, None

    async def __call__(self, scope, receive, send) -> None:
        self.loop = asyncio.get_running_loop()
        await self.app(scope, receive, send)

    def publish(self, *events: Event) -> None:
        """Publish on the app's bus; returns once every publish has returned."""

        async def publish_all() -> None:
            for e in events:
                await self.app.state.bus.publish(e)

        asyncio.run_coroutine_threadsafe(publish_all(), self.loop).result(WAIT_S)


# ── in process: resume from the recent events kept ──────────────────────────────────────────


def test_a_client_that_reconnects_gets_exactly_what_it_missed(sqlite_engine):
    app = Looped(create_app(sqlite_engine, roles={Role.API}))
    with LiveServer(app) as server:
        url = f"{server.url}/api/v1/stream?types={TYPES}"
        with Sse(url) as first:
            first.connected()
            app.publish(silent("a"), stored(1.0, 2.0, 3.0), silent("b"))
            seen = first.take(3)
        assert [said(e) for e in seen] == ["a", 1.0, 2.0]  # cut off inside the batch
        app.publish(silent("c"), stored(4.0, 5.0))  # while it is away
        with Sse(url, first.last_id) as again:
            missed = again.connected().take(5)
            app.publish(silent("d"))
            live = again.take(1)
    assert [said(e) for e in missed + live] == [3.0, "b", "c", 4.0, 5.0, "d"]
    ids = [i for i, _, _ in seen + missed + live]
    assert len(set(ids)) == len(ids) and all(ids)  # every event has its own id
    batch = seen[1][0].rpartition(":")[0]
    assert [i for i, _, _ in seen[1:] + missed[:1]] == [f"{batch}:0", f"{batch}:1", batch]  # its last item: the batch


def test_the_last_event_id_parameter_resumes_too_for_clients_without_headers(sqlite_engine):
    app = Looped(create_app(sqlite_engine, roles={Role.API}))
    with LiveServer(app) as server:
        url = f"{server.url}/api/v1/stream?types=sensor.>"
        with Sse(url) as first:
            first.connected()
            app.publish(silent("a"))
            [(last, _, _)] = first.take(1)
        app.publish(silent("b"), silent("c"))
        with Sse(f"{url}&last_event_id={last}") as again:
            assert [said(e) for e in again.take(2)] == ["b", "c"]


def test_a_client_that_connected_and_got_nothing_resumes_from_where_it_connected(sqlite_engine):
    app = Looped(create_app(sqlite_engine, roles={Role.API}))
    with LiveServer(app) as server:
        url = f"{server.url}/api/v1/stream?types=sensor.>"
        with Sse(url) as quiet:
            assert quiet.connected().last_id is not None  # the connect block gives its place
        app.publish(silent("a"))  # after it left
        with Sse(url, quiet.last_id) as again:
            assert [said(e) for e in again.connected().take(1)] == ["a"]


def test_an_id_the_process_no_longer_holds_or_never_gave_gets_a_reset(sqlite_engine):
    app = Looped(create_app(sqlite_engine, bus=InProcessBus(replay_weight=5), roles={Role.API}))
    with LiveServer(app) as server:
        url = f"{server.url}/api/v1/stream?types=sensor.>"
        with Sse(url) as first:
            first.connected()
            app.publish(silent("a"))
            [(old, _, _)] = first.take(1)
        app.publish(*(silent(f"n{i}") for i in range(10)))  # more than the process keeps
        for stale in (old, "0badc0de-1", "17", "17:3"):  # too old; another process's; a NATS id
            with Sse(url, stale) as again:
                assert again.connected().last_id != stale  # a fresh place to resume from
                [(_, name, _)] = again.take(1)
                assert name == "reset"
                app.publish(silent("z"))
                assert [said(e) for e in again.take(1)] == ["z"]  # then live, from now


def test_the_stream_keeps_who_may_see_what_on_resume(sqlite_engine):
    from test_api_support import seed

    tokens, _ = seed(sqlite_engine)
    app = Looped(create_app(sqlite_engine, roles={Role.API}))
    incident = event(INCIDENT_CHANGED, {"id": 1, "kind": "fire", "title": "t", "status": "open",
                                          "area_code": "11110", "action": "opened"})
    with LiveServer(app) as server:
        anonymous = f"{server.url}/api/v1/stream?types=incident.>,sensor.>"
        with Sse(anonymous) as first:
            first.connected()
            app.publish(silent("a"))
            first.take(1)
        app.publish(incident, silent("b"))
        with Sse(anonymous, first.last_id) as again:
            assert [said(e) for e in again.take(1)] == ["b"]  # not the incident
        with Sse(f"{anonymous}&token={tokens['operator']}", first.last_id) as staff:
            assert [said(e) for e in staff.take(2)] == [INCIDENT_CHANGED, "b"]


# ── slow clients ────────────────────────────────────────────────────────────────────────────


def test_a_follower_that_does_not_read_is_dropped_and_the_others_get_everything():
    async def scenario() -> None:
        bus = InProcessBus()
        slow = await bus.follow([">"], limit=3)
        fast = await bus.follow([">"], limit=3)
        got = []
        for i in range(5):
            await bus.publish(silent(str(i)))  # returns at once: nobody waits on a reader
            got.append((await fast.next(1.0)).data["name"])
        assert got == ["0", "1", "2", "3", "4"]
        assert await fast.next(0.05) is None  # nothing more within its timeout: the stream's heartbeat
        with pytest.raises(Lagged) as lag:
            await slow.next(1.0)
        assert lag.value.dropped == 5
        slow.close()
        fast.close()
        assert not bus.wants(SENSOR_SILENT)

    asyncio.run(scenario())


def test_a_slow_client_gets_lagged_while_a_fast_one_gets_everything_and_the_publisher_goes_on(
        sqlite_engine, monkeypatch):
    monkeypatch.setattr(sensing, "CLIENT_QUEUE", 100)  # fewer events to fill it: the same code path
    app = Looped(create_app(sqlite_engine, roles={Role.API}))
    padding = "x" * 1000  # ~1 kB an event: the slow client's socket buffers fill sooner
    rounds, per_round = 120, 50  # a round fits in a client's queue: a client that reads keeps up
    count = rounds * per_round
    with LiveServer(app) as server:
        url = f"{server.url}/api/v1/stream?types=sensor.>"
        slow = never_reading(server.port, "/api/v1/stream?types=sensor.>")
        with SseListener(url, lambda seen: len(seen) == count, timeout=120) as fast:
            for r in range(rounds):  # each publish returns although the slow client reads nothing
                app.publish(*(event(SENSOR_SILENT, {"datastream_id": i, "name": padding, "last_time": None})
                              for i in range(r * per_round, (r + 1) * per_round)))
                until(lambda: len(fast.seen) == (r + 1) * per_round)  # noqa: B023 - used at once
        assert [d["datastream_id"] for _, d in fast.seen] == list(range(count))
        got = read_all(slow)
        names = [name for _, name, _ in got]
        assert names.count("lagged") == 1 and names[-1] == "lagged"  # then the server ended its stream
        before = [d["datastream_id"] for _, name, d in got if name == SENSOR_SILENT]
        assert before == list(range(len(before))) and len(before) < count  # in order, then dropped
        resume = got[-1][2]["resume"]
        assert resume == got[-2][0]  # the id of the last event it had
        with Sse(url, resume) as again:  # its EventSource reconnects: it gets the rest from the kept events
            rest = [d["datastream_id"] for _, _, d in again.take(count - len(before))]
        assert before + rest == list(range(count))


def until(done) -> None:
    for _ in range(int(WAIT_S / 0.01)):
        if done():
            return
        time.sleep(0.01)
    raise AssertionError("waited in vain")


def never_reading(port: int, path: str) -> socket.socket:
    """A client with a tiny receive buffer that sends its request and then reads nothing."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", port))
    request = f"GET {path} HTTP/1.1\r\nHost: test\r\nAccept: text/event-stream\r\nConnection: close\r\n\r\n"
    sock.sendall(request.encode())
    return sock


def read_all(sock: socket.socket) -> list[tuple[str | None, str, dict]]:
    """Everything the server sent until it closed the connection, as ``(id, event, data)``."""
    sock.settimeout(WAIT_S)
    chunks = []
    while chunk := sock.recv(1 << 16):
        chunks.append(chunk)
    sock.close()
    body = b"".join(chunks).split(b"\r\n\r\n", 1)[1]
    text = _unchunked(body).decode()
    events = []
    for block in text.split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "data" in fields:
            events.append((fields.get("id"), fields.get("event", "message"), json.loads(fields["data"])))
    return events


def _unchunked(body: bytes) -> bytes:
    out, at = [], 0
    while True:
        end = body.index(b"\r\n", at)
        size = int(body[at:end], 16)
        if size == 0:
            return b"".join(out)
        out.append(body[end + 2:end + 2 + size])
        at = end + 2 + size + 2


# ── NATS: another replica resumes where the first left off ──────────────────────────────────


@pytest.fixture
def bus_prefix():
    """An event stream of this test's own (``HAECHI_BUS_PREFIX``): the server may be shared."""
    prefix = f"haechi_test_{uuid.uuid4().hex[:10]}"
    try:
        asyncio.run(_delete_stream(EventStream.of(prefix).name))
    except BusUnavailable as exc:
        service_unavailable("NATS", exc)
    yield prefix
    asyncio.run(_delete_stream(EventStream.of(prefix).name))


async def _delete_stream(name: str) -> None:
    nc = await connect_nats(NATS_URL, initial_attempts=1)
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await nc.jetstream().delete_stream(name)
    await nc.close()


def publish_on_nats(prefix: str, *events: Event) -> None:
    """Publish as another process would (the engine, a worker)."""

    async def publish() -> None:
        bus = await NatsBus.connect(NATS_URL, EventStream.of(prefix), "test-publisher")
        try:
            for e in events:
                await bus.publish(e)
        finally:
            await bus.close()

    asyncio.run(publish())


def test_a_client_that_reconnects_to_another_replica_misses_nothing(postgres_url, bus_prefix):
    engine = open_db(postgres_url)
    settings = Settings(database_url=postgres_url, bus_url=NATS_URL, bus_prefix=bus_prefix)
    try:
        with (LiveServer(create_app(engine, settings, roles={Role.API})) as a,
              LiveServer(create_app(engine, settings, roles={Role.API})) as b):
            with Sse(f"{a.url}/api/v1/stream?types={TYPES}") as first:
                first.connected()
                publish_on_nats(bus_prefix, silent("a"), stored(1.0, 2.0, 3.0), silent("b"))
                seen = first.take(3)
            assert [said(e) for e in seen] == ["a", 1.0, 2.0]
            publish_on_nats(bus_prefix, silent("c"), stored(4.0, 5.0))  # while it is away
            with Sse(f"{b.url}/api/v1/stream?types={TYPES}", first.last_id) as again:  # the other replica
                missed = again.connected().take(5)
                publish_on_nats(bus_prefix, silent("d"))
                live = again.take(1)
            assert [said(e) for e in missed + live] == [3.0, "b", "c", 4.0, 5.0, "d"]
            ids = [i for i, _, _ in seen + missed + live]
            batch = seen[1][0].rpartition(":")[0]
            assert batch.isdigit() and ids[1:4] == [f"{batch}:0", f"{batch}:1", batch]  # a stream sequence
            sequences = [int(i.split(":")[0]) for i in ids]
            assert sequences == sorted(sequences) and len(set(ids)) == len(ids)
            with Sse(f"{b.url}/api/v1/stream?types=sensor.>", "12345678") as unknown:  # beyond the stream
                assert [name for _, name, _ in unknown.connected().take(1)] == ["reset"]
    finally:
        engine.dispose()


def test_a_nats_follower_resumes_by_sequence_is_told_when_it_lags_and_reset_when_events_are_gone(bus_prefix):
    async def scenario() -> None:
        names = EventStream.of(bus_prefix)
        bus = await NatsBus.connect(NATS_URL, names, "test")
        feeds = []

        async def follow(**kw):
            feeds.append(await bus.follow(["sensor.>"], limit=3, **kw))
            return feeds[-1]

        try:
            feed = await follow()
            for name in ("a", "b", "c"):
                await bus.publish(silent(name))
            a, b = await feed.next(WAIT_S), await feed.next(WAIT_S)
            assert int(b.id) == int(a.id) + 1 and int(feed.position) == int(a.id) - 1
            assert [(await f.next(WAIT_S)).data["name"] for f in (
                await follow(after=a.id), await follow(after=b.id, including=True), await follow(after=b.id))] == [
                "b", "b", "c"]

            behind = await follow()
            for i in range(10):  # published while it reads nothing: more than its limit waits
                await bus.publish(silent(str(i)))
            with pytest.raises(Lagged):
                await behind.next(WAIT_S)

            await bus.js.purge_stream(names.name)  # as the stream's age limit does to old events
            gone = await follow(after=a.id)
            assert gone.reset and not (await follow(after=str(int(gone.position)))).reset
        finally:
            for f in feeds:
                f.close()
            await bus.close()

    asyncio.run(scenario())
