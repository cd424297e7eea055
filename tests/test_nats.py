"""The NATS JetStream bus on the real server: same patterns as the in-process bus, durable subscribers."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from datetime import UTC, datetime

import nats.js.errors
import pytest
from conftest import service_unavailable

from haechi.bus.nats import (
    BusUnavailable,
    EventStream,
    NatsBus,
    connect_nats,
    decode_event,
    encode_event,
)
from haechi.core.events import Event

NATS_URL = os.environ.get("HAECHI_TEST_NATS_URL", "nats://127.0.0.1:4222")
WAIT_S = 30.0  # only ever waited on, never asserted


@pytest.fixture
def stream():
    """A stream of this test's own, deleted afterwards (the server may be shared)."""
    tag = uuid.uuid4().hex[:10]
    names = EventStream(name=f"HAECHI_TEST_EVENTS_{tag}", subject=f"haechi_test_{tag}.events", max_age_s=600)
    try:
        asyncio.run(_delete_stream(names.name))
    except BusUnavailable as exc:
        service_unavailable("NATS", exc)
    yield names
    asyncio.run(_delete_stream(names.name))


async def _delete_stream(name: str) -> None:
    nc = await connect_nats(NATS_URL, initial_attempts=1)
    with contextlib.suppress(nats.js.errors.NotFoundError):  # not there: nothing to clean
        await nc.jetstream().delete_stream(name)
    await nc.close()


class Inbox:
    """Collects events for a handler and lets a test wait until enough have come."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = asyncio.Event()

    async def __call__(self, event: Event) -> None:
        self.events.append(event)
        self._changed.set()

    async def until(self, count: int) -> list[str]:
        async with asyncio.timeout(WAIT_S):
            while len(self.events) < count:
                self._changed.clear()
                await self._changed.wait()
        return [e.type for e in self.events]


def test_events_survive_the_json_round_trip():
    at = datetime(2020, 8, 6, 5, 0, tzinfo=UTC)
    event = decode_event(encode_event(Event("observation.stored", {"n": 1, "ids": [3]}, at)))
    assert event == Event("observation.stored", {"n": 1, "ids": [3]}, at)


def test_subscribers_get_what_matches_their_pattern(stream):
    async def scenario():
        bus = await NatsBus.connect(NATS_URL, stream, name="test")
        observations, loaded, everything = Inbox(), Inbox(), Inbox()
        bus.subscribe("observation.>", observations)
        bus.subscribe("*.loaded", loaded)
        bus.subscribe(">", everything)
        await bus.ready()
        for kind in ("observation.stored", "city.loaded", "sensor.silent", "observation.qc.flagged"):
            await bus.publish(Event(kind, {"kind": kind}))
        assert await everything.until(4) == [
            "observation.stored", "city.loaded", "sensor.silent", "observation.qc.flagged"]
        assert await observations.until(2) == ["observation.stored", "observation.qc.flagged"]
        assert await loaded.until(1) == ["city.loaded"]
        assert observations.events[0].data == {"kind": "observation.stored"}
        await bus.close()

    asyncio.run(scenario())


def test_a_durable_subscriber_gets_what_was_published_while_it_was_down(stream):
    async def scenario():
        publisher = await NatsBus.connect(NATS_URL, stream, name="publisher")
        before = await NatsBus.connect(NATS_URL, stream, name="warnings")
        first = Inbox()
        stop = before.subscribe("observation.>", first, durable="warnings-engine")
        await before.ready()
        await publisher.publish(Event("observation.stored", {"n": 1}))
        await first.until(1)
        stop()
        await before.close()  # the subscriber is down ...

        for n in (2, 3):  # ... while these are published
            await publisher.publish(Event("observation.stored", {"n": n}))

        after = await NatsBus.connect(NATS_URL, stream, name="warnings")
        second = Inbox()
        after.subscribe("observation.>", second, durable="warnings-engine")
        await after.ready()
        await second.until(2)
        await asyncio.sleep(0.5)  # time for a wrongly repeated first event to show up
        assert [e.data["n"] for e in second.events] == [2, 3]
        await after.close()
        await publisher.close()

    asyncio.run(scenario())


def test_a_new_subscriber_starts_now_not_with_the_history(stream):
    async def scenario():
        bus = await NatsBus.connect(NATS_URL, stream, name="test")
        await bus.publish(Event("city.loaded", {"n": "old"}))
        inbox = Inbox()
        bus.subscribe("city.loaded", inbox)
        await bus.ready()
        await bus.publish(Event("city.loaded", {"n": "new"}))
        await inbox.until(1)
        await asyncio.sleep(0.5)
        assert [e.data["n"] for e in inbox.events] == ["new"]
        await bus.close()

    asyncio.run(scenario())


def test_a_failing_handler_gets_the_event_again_and_others_are_not_held_up(stream):
    async def scenario():
        bus = await NatsBus.connect(NATS_URL, stream, name="test")
        calls, healthy = [], Inbox()

        async def flaky(event: Event) -> None:
            calls.append(event.data["n"])
            if len(calls) == 1:
                raise RuntimeError("a listener's bad moment")

        bus.subscribe("sensor.>", flaky)
        bus.subscribe("sensor.>", healthy)
        await bus.ready()
        await bus.publish(Event("sensor.silent", {"n": 1}))
        await healthy.until(1)
        async with asyncio.timeout(WAIT_S):
            while len(calls) < 2:
                await asyncio.sleep(0.05)
        assert calls == [1, 1]  # redelivered after the failure
        await bus.close()

    asyncio.run(scenario())


def test_event_types_must_be_plain_dotted_names(stream):
    async def scenario():
        bus = await NatsBus.connect(NATS_URL, stream, name="test")
        for bad in ("observation.*", "a..b", "has space", ">"):
            with pytest.raises(ValueError):
                await bus.publish(Event(bad, {}))
        await bus.close()

    asyncio.run(scenario())


async def module_handler(event: Event) -> None:
    """A service's handler: its consumer is durable."""


def test_service_handlers_get_durable_consumers_and_closures_ephemeral_ones(stream):
    async def scenario():
        bus = await NatsBus.connect(NATS_URL, stream, name="warnings")

        async def one_client(event: Event) -> None:
            """Per-call state, like one dashboard client's live stream."""

        name = bus.durable_name("observation.>", module_handler)
        assert name.startswith("warnings-test_nats_module_handler-observation-") and "." not in name
        assert name == bus.durable_name("observation.>", module_handler)
        assert name != bus.durable_name("sensor.>", module_handler)
        assert bus.durable_name("observation.>", one_client) is None
        assert bus.durable_name("observation.>", Inbox()) is None
        await bus.close()

    asyncio.run(scenario())


def test_an_unreachable_server_is_a_clear_error():
    async def scenario():
        with pytest.raises(BusUnavailable, match="cannot connect"):
            await NatsBus.connect("nats://127.0.0.1:1", name="test")

    asyncio.run(scenario())
