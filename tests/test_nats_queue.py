"""The ingest queue on real NATS JetStream and PostgreSQL: workers in a queue group, kill -9, dead letters.

Worker processes are real subprocesses running ``haechi.worker.run`` (what ``haechi worker``
runs) on streams and consumers named for this test only, deleted afterwards.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import nats.js.errors
import orjson
import pytest
from conftest import service_unavailable
from sqlalchemy import text

from haechi.bus.nats import BusUnavailable, EventStream, NatsBus, connect_nats
from haechi.cities.provision import save_catalogue
from haechi.core.clock import utcnow
from haechi.core.events import Event
from haechi.ingest.pipeline import Pipeline, Report
from haechi.ingest.queue import (
    IngestQueue,
    IngestStream,
    LocalSink,
    decode_batch,
    encode_batch,
    encode_batches,
    source_kind,
    worker_subscription,
)
from haechi.model.reading import Reading, Rejected
from haechi.store import deadletters, sensing
from haechi.store.db import make_engine
from haechi.worker import Worker, in_write_order, serve

NATS_URL = os.environ.get("HAECHI_TEST_NATS_URL", "nats://127.0.0.1:4222")
ROOT = Path(__file__).resolve().parents[1]
WAIT_S = 180.0  # generous, only ever waited on: CI machines are small
T0 = (utcnow() - timedelta(days=2)).replace(second=0, microsecond=0)


# ── the message format (no server) ───────────────────────────────────────────────────────


def reading_at(stream: int, minute: int, value: float = 5.0) -> Reading:
    return Reading(stream, T0 + timedelta(minutes=minute), value, "m")


def test_a_batch_survives_the_message_round_trip():
    items = [reading_at(1, 0), Reading(2, T0, 1.5, None, T0, {"battery": 3.1}), Rejected(7, "bad", "result", "{}")]
    source, back = decode_batch(encode_batch(items, "http:gateway"), "haechi.ingest.http")
    assert (source, back) == ("http:gateway", items)


def test_big_batches_are_split_into_messages_that_fit():
    items = [reading_at(1, i) for i in range(1200)]
    messages = encode_batches(items, "test", chunk=500, max_bytes=20_000)
    assert all(len(m) <= 20_000 for m in messages) and len(messages) > 3
    assert [r for m in messages for r in decode_batch(m, "s")[1]] == items


def test_unreadable_messages_and_readings_become_rejections_with_their_raw_text():
    source, [rejected] = decode_batch(b"{not json", "haechi.ingest.mqtt")
    assert source == "nats:haechi.ingest.mqtt"
    assert (rejected.field, rejected.raw) == ("message", "{not json")
    body = {"source": "mqtt:x", "readings": [{"datastream_id": 1, "phenomenon_time": T0.isoformat(), "result": "high"}]}
    _, [bad] = decode_batch(orjson.dumps(body), "s")
    assert (bad.index, bad.field) == (0, "result") and "high" in bad.raw


def test_the_worker_writes_each_stream_in_time_order_so_workers_lock_rows_alike():
    items = [reading_at(2, 5), Rejected(0, "x", None, ""), reading_at(1, 9), reading_at(2, 1), reading_at(1, 3)]
    ordered = in_write_order(items)
    assert [(r.datastream_id, (r.phenomenon_time - T0) // timedelta(minutes=1)) for r in ordered[:4]] == [
        (1, 3), (1, 9), (2, 1), (2, 5)]
    assert isinstance(ordered[4], Rejected)


def test_subjects_name_the_kind_of_source():
    assert [source_kind(s) for s in ("mqtt:haechi/v1/12/observations", "http:gw 1", "")] == ["mqtt", "http", "unknown"]


# ── on the servers ───────────────────────────────────────────────────────────────────────


@pytest.fixture
def streams():
    """(ingest stream, event stream) of this test's own; short ack wait so a dead worker's share moves soon."""
    tag = uuid.uuid4().hex[:10]
    ingest = IngestStream(name=f"HAECHI_TEST_INGEST_{tag}", subject=f"haechi_test_{tag}.ingest",
                          durable=f"workers-{tag}", ack_wait_s=3.0)
    events = EventStream(name=f"HAECHI_TEST_EVENTS_{tag}", subject=f"haechi_test_{tag}.events", max_age_s=600)
    try:
        asyncio.run(_delete_streams())
    except BusUnavailable as exc:
        service_unavailable("NATS", exc)
    yield ingest, events
    asyncio.run(_delete_streams(ingest.name, events.name))


async def _delete_streams(*names: str) -> None:
    nc = await connect_nats(NATS_URL, initial_attempts=1)
    for name in names:
        with contextlib.suppress(nats.js.errors.NotFoundError):  # not there: nothing to clean
            await nc.jetstream().delete_stream(name)
    await nc.close()


@pytest.fixture
def db(postgres_url):
    engine = make_engine(postgres_url)
    yield engine
    engine.dispose()


def make_datastreams(engine, count: int) -> list[int]:
    """``count`` water-level datastreams in metres on one gauge."""
    with engine.begin() as conn:
        property_id = save_catalogue(conn)["water_level"]
        thing = sensing.create_thing(conn, {"name": "queue test gauge"}, [sensing.create_location(conn, {
            "name": "한강대교", "location": {"type": "Point", "coordinates": [126.9567, 37.5144]}})])
        sensor = sensing.create_sensor(conn, {"name": "gauge"})
        return [sensing.create_datastream(conn, {
            "name": f"level {i}", "thing_id": thing, "sensor_id": sensor, "observed_property_id": property_id,
            "unit_name": "metre", "unit_symbol": "m", "unit_definition": "ucum:m"}) for i in range(count)]


def readings_for(streams: list[int], per_stream: int) -> list[Reading]:
    return [reading_at(s, m, 5.0 + (m % 7) / 100) for m in range(per_stream) for s in streams]


def stored(engine, streams: list[int]) -> tuple[int, int]:
    """(rows, distinct idempotency keys) of these datastreams' observations."""
    with engine.connect() as conn:
        return tuple(conn.execute(text(
            "SELECT count(*), count(DISTINCT (datastream_id, phenomenon_time)) FROM observations "
            "WHERE datastream_id = ANY(:ids)"), {"ids": streams}).one())


async def publish(stream: IngestStream, items: list[Reading], source: str, per_call: int = 1000) -> int:
    """Queue ``items`` as an adapter would, ``per_call`` at a time; returns the messages sent."""
    queue = await IngestQueue.connect(NATS_URL, stream, chunk=100)
    for start in range(0, len(items), per_call):
        report = await queue.ingest(items[start:start + per_call], source)
        assert report.received == len(items[start:start + per_call])
    await queue.close()
    return sum(len(encode_batches(items[s:s + per_call], source, 100)) for s in range(0, len(items), per_call))


async def queue_drained(stream: IngestStream) -> bool:
    """Every message delivered and acknowledged (False while no worker has made the consumer yet)."""
    nc = await connect_nats(NATS_URL)
    try:
        info = await nc.jetstream().consumer_info(stream.name, stream.durable)
    except nats.js.errors.NotFoundError:
        return False
    finally:
        await nc.close()
    return info.num_pending == 0 and info.num_ack_pending == 0


async def wait_until(condition: Callable, what: str) -> None:
    try:
        async with asyncio.timeout(WAIT_S):
            while not await condition():
                await asyncio.sleep(0.05)
    except TimeoutError:
        raise AssertionError(f"gave up waiting for {what}") from None


def start_worker(postgres_url: str, streams: tuple[IngestStream, EventStream], log: Path, batch: int):
    ingest, events = streams
    code = ("from haechi.worker import run\nfrom haechi.ingest.queue import IngestStream\n"
            "from haechi.bus.nats import EventStream\n"
            f"run({postgres_url!r}, {NATS_URL!r}, batch={batch}, stream={ingest!r}, events={events!r})")
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, stdout=log.open("wb"), stderr=subprocess.STDOUT)


def stop_worker(process: subprocess.Popen, log: Path) -> int:
    """SIGTERM, then the messages this worker handled (from its closing log line)."""
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0, log.read_text()
    return int(re.findall(r"(\d+) messages:", log.read_text())[-1])


def test_two_workers_share_the_queue_and_store_each_reading_once(db, postgres_url, streams, tmp_path):
    ids = make_datastreams(db, 10)
    items = readings_for(ids, 500)
    logs = [tmp_path / "a.log", tmp_path / "b.log"]
    workers = [start_worker(postgres_url, streams, log, batch=2) for log in logs]
    try:
        sent = asyncio.run(publish(streams[0], items, "http:two-workers"))

        async def done() -> bool:
            return stored(db, ids)[0] == len(items) and await queue_drained(streams[0])

        asyncio.run(wait_until(done, "all stored"))
        handled = [stop_worker(w, log) for w, log in zip(workers, logs, strict=True)]
    finally:
        for w in workers:
            w.kill()
    assert stored(db, ids) == (len(items), len(items))
    assert sum(handled) == sent  # each message went to exactly one worker


def test_a_worker_killed_mid_batch_loses_nothing(db, postgres_url, streams, tmp_path):
    ids = make_datastreams(db, 20)
    items = readings_for(ids, 1000)  # 20,000 readings in 200 messages, one per transaction
    first = start_worker(postgres_url, streams, tmp_path / "first.log", batch=1)
    second = None
    try:
        asyncio.run(publish(streams[0], items, "http:kill-test"))

        async def working() -> bool:
            return stored(db, ids)[0] >= 2000

        asyncio.run(wait_until(working, "the first worker under way"))
        first.send_signal(signal.SIGKILL)
        first.wait(timeout=60)
        at_kill = stored(db, ids)[0]
        assert at_kill < len(items), "the worker finished before it could be killed; the test proved nothing"

        second = start_worker(postgres_url, streams, tmp_path / "second.log", batch=50)

        async def done() -> bool:
            return stored(db, ids)[0] >= len(items) and await queue_drained(streams[0])

        asyncio.run(wait_until(done, "the second worker to finish"))
        stop_worker(second, tmp_path / "second.log")
    finally:
        for process in (first, second):
            if process is not None:
                process.kill()
    assert stored(db, ids) == (len(items), len(items))  # every reading once, none twice
    with db.connect() as conn:
        assert deadletters.pending(conn, source="http:kill-test") == []


def test_malformed_messages_end_in_the_dead_letters_and_good_ones_are_published(db, postgres_url, streams):
    ingest, events = streams
    [stream] = make_datastreams(db, 1)
    tag = ingest.durable
    good = reading_at(stream, 0, 4.2)
    mixed = {"source": f"mqtt:{tag}", "readings": [
        {"datastream_id": stream, "phenomenon_time": (T0 + timedelta(minutes=1)).isoformat(), "result": "high"},
        {"datastream_id": 999_999_999, "phenomenon_time": T0.isoformat(), "result": 1.0},
    ], "rejected": [{"index": 4, "reason": "line is not valid JSON", "field": "body", "raw": "{oops"}]}

    async def scenario():
        listener, seen = await NatsBus.connect(NATS_URL, events, name="test"), []

        async def on_stored(event: Event) -> None:
            seen.append(event)

        listener.subscribe("observation.stored", on_stored)
        await listener.ready()
        nc = await connect_nats(NATS_URL)
        js = nc.jetstream()
        await js.add_stream(ingest.stream_config())
        await js.publish(f"{ingest.subject}.mqtt", b"{not json at all")
        await js.publish(f"{ingest.subject}.mqtt", orjson.dumps(mixed))
        await js.publish(f"{ingest.subject}.http", encode_batch([good], f"http:{tag}"))
        stop = asyncio.Event()
        worker = asyncio.create_task(serve(postgres_url, NATS_URL, batch=10, stream=ingest, events=events, stop=stop))
        await wait_until(lambda: queue_drained(ingest), "the worker to take every message")
        await wait_until(lambda: _true(bool(seen)), "the stored event")
        stop.set()
        totals = await worker
        await nc.close()
        await listener.close()
        return totals, seen

    totals, seen = asyncio.run(scenario())
    assert totals.messages == 3 and totals.stored == 1
    assert seen[0].data["source"] == f"http:{tag}"
    assert seen[0].data["observations"][0]["result"] == 4.2
    with db.connect() as conn:
        unreadable = deadletters.pending(conn, source=f"nats:{ingest.subject}.mqtt")
        refused = deadletters.pending(conn, source=f"mqtt:{tag}")
        assert stored(db, [stream]) == (1, 1)
    assert [(d["reason"].split(":")[0], d["payload"]) for d in unreadable] == [("message", "{not json at all")]
    reasons = sorted(d["reason"] for d in refused)
    assert reasons[0] == "body: line is not valid JSON"
    assert reasons[1] == "datastream_id: unknown datastream 999999999"
    assert reasons[2].startswith("result: result must be a number")


def test_a_slow_transaction_keeps_its_messages_from_other_workers(streams):
    ingest = replace(streams[0], ack_wait_s=1.0)

    class SlowPipeline:
        """Stands in for a database that takes several ack waits to commit."""

        async def ingest(self, items, source):
            await asyncio.sleep(4 * ingest.ack_wait_s)
            return Report(received=len(items), stored=len(items))

    async def scenario():
        nc = await connect_nats(NATS_URL)
        mine = await worker_subscription(nc.jetstream(), ingest)
        rival = await worker_subscription(nc.jetstream(), ingest)  # another worker on the same consumer
        await nc.jetstream().publish(f"{ingest.subject}.test", encode_batch([reading_at(1, 0)], "test"))
        worker = Worker(nc, mine, SlowPipeline(), batch=5, ack_wait_s=ingest.ack_wait_s)
        work = asyncio.create_task(worker.handle(await mine.fetch(5, timeout=WAIT_S)))
        with pytest.raises(TimeoutError):  # the rival must not get it while we are busy with it
            await rival.fetch(1, timeout=3 * ingest.ack_wait_s)
        await work
        drained = await queue_drained(ingest)
        await nc.close()
        return worker.totals, drained

    totals, drained = asyncio.run(scenario())
    assert (totals.messages, totals.stored, drained) == (1, 1, True)


async def _true(value: bool) -> bool:
    return value


def test_the_local_sink_stores_before_it_returns(sqlite_engine):
    [stream] = make_datastreams(sqlite_engine, 1)
    sink = LocalSink(Pipeline(sqlite_engine))
    report = asyncio.run(sink.ingest([reading_at(stream, 0), reading_at(stream, 0)], "test"))
    assert (sink.queued, report.stored, report.duplicates) == (False, 1, 1)
