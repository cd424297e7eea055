"""``haechi worker``: store what the ingest queue holds, exactly once, however many workers run.

All workers pull from one durable JetStream consumer (a queue group: each message goes to one
worker at a time). A worker fetches up to N messages, decodes them, stores them through the
pipeline in as few transactions as it can, and acknowledges each message only after the commit
that holds it. Nothing is lost when a worker dies: its un-acknowledged messages are redelivered
to another worker after the consumer's ack wait, and writes are idempotent on (datastream,
phenomenon time), so a message stored twice changes nothing. Messages that cannot be read go to
the dead-letter store (with their reason and raw text) and are acknowledged after that commit.

The worker is a role of the runtime (``haechi.runtime``): :class:`QueueWorker` is the service the
sensing part runs in that role, and ``serve`` composes a process of that role alone.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import anyio.to_thread
import nats.errors
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg

from haechi.bus.nats import EVENTS, EventStream, NatsBus, connect_nats
from haechi.core.settings import Settings
from haechi.ingest.pipeline import Pipeline, Report
from haechi.ingest.queue import INGEST, IngestStream, decode_batch, worker_subscription
from haechi.model.reading import Reading, Rejected
from haechi.runtime import Context, Role, Runtime, stopped_by_signals
from haechi.runtime.parts import PARTS
from haechi.store import open_db

log = logging.getLogger(__name__)

#: Messages fetched at a time (``--batch``), and how long one fetch waits for the first message.
BATCH, FETCH_WAIT_S = 50, 1.0
#: Readings per transaction: keeps the ``observation.stored`` event well under NATS's 1 MB payload.
MAX_READINGS_PER_STORE = 4000
#: A failed store (database down) is retried after this long rather than at once.
RETRY_DELAY_S = 5.0


@dataclass
class Totals:
    """What this worker has done since it started (for its log)."""

    messages: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    failures: int = 0
    logged_at: float = field(default_factory=time.monotonic)

    def add(self, messages: int, report: Report) -> None:
        self.messages += messages
        self.stored += report.stored
        self.duplicates += report.duplicates
        self.rejected += len(report.rejected)


@dataclass
class Unit:
    """Messages stored in one transaction, with their items in write order."""

    source: str
    messages: list[Msg] = field(default_factory=list)
    items: list[Reading | Rejected] = field(default_factory=list)


class Worker:
    """The loop: fetch, decode, store, acknowledge — until ``stop`` is set."""

    def __init__(self, nc: NatsClient, subscription, pipeline: Pipeline, batch: int = BATCH,
                 ack_wait_s: float = INGEST.ack_wait_s) -> None:
        self.nc, self.subscription, self.pipeline, self.batch = nc, subscription, pipeline, batch
        self.progress_every_s = ack_wait_s / 3  # tell JetStream we are alive well before it gives up on us
        self.totals = Totals()
        self._held: dict[int, Msg] = {}  # fetched, not yet acked or nacked (Msg is unhashable)

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            messages = await self._fetch()
            if messages:
                await self.handle(messages)
            self._log_totals()

    async def _fetch(self) -> list[Msg]:
        try:
            return await self.subscription.fetch(self.batch, timeout=FETCH_WAIT_S)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except nats.errors.Error as exc:  # reconnecting: nats-py comes back by itself
            log.warning("fetch failed (%s); retrying", exc)
            await asyncio.sleep(1)
            return []

    async def handle(self, messages: Sequence[Msg]) -> None:
        """Store a fetched batch, acknowledging each message after the commit that holds it."""
        self._held.update((id(m), m) for m in messages)
        alive = asyncio.create_task(self._report_progress())
        try:
            for unit in units_of(messages):
                await self._store(unit)
                for m in unit.messages:
                    del self._held[id(m)]
        finally:
            alive.cancel()
            self._held.clear()

    async def _store(self, unit: Unit) -> None:
        try:
            report = await self.pipeline.ingest(unit.items, unit.source)
        except Exception:
            # the database (or the event bus) failed: nothing is acked, so all is delivered again
            self.totals.failures += 1
            log.exception("storing %d messages from %s failed; redelivery in %.0f s",
                          len(unit.messages), unit.source, RETRY_DELAY_S)
            await asyncio.gather(*(m.nak(delay=RETRY_DELAY_S) for m in unit.messages), return_exceptions=True)
            return
        self.totals.add(len(unit.messages), report)
        await self._acknowledge(unit.messages)

    async def _acknowledge(self, messages: list[Msg]) -> None:
        """Ack after the commit; an ack lost to a reconnect only means a harmless redelivery."""
        results = await asyncio.gather(*(m.ack() for m in messages), return_exceptions=True)
        try:
            await self.nc.flush()
        except nats.errors.Error as exc:
            results.append(exc)
        if any(isinstance(r, Exception) for r in results):
            log.warning("some acknowledgements may be lost (%s); those messages will be stored again, as no-ops",
                        next(r for r in results if isinstance(r, Exception)))

    async def _report_progress(self) -> None:
        """Keep every held message ours while earlier transactions of the batch commit."""
        while True:
            await asyncio.sleep(self.progress_every_s)
            await asyncio.gather(*(m.in_progress() for m in list(self._held.values())), return_exceptions=True)

    def _log_totals(self, every_s: float = 10.0) -> None:
        t = self.totals
        if time.monotonic() - t.logged_at >= every_s:
            t.logged_at = time.monotonic()
            log.info("%d messages: %d stored, %d duplicates, %d dead-lettered, %d failed stores",
                     t.messages, t.stored, t.duplicates, t.rejected, t.failures)


def units_of(messages: Sequence[Msg], max_readings: int = MAX_READINGS_PER_STORE) -> list[Unit]:
    """Group messages by source (the dead letters name it) into transactions of bounded size.

    Readings are sorted by (datastream, time): QC sees each stream in order, and concurrent
    workers lock rows in the same order, so their transactions cannot deadlock.
    """
    units: list[Unit] = []
    open_units: dict[str, Unit] = {}
    for msg in messages:
        source, items = decode_batch(msg.data, msg.subject)
        unit = open_units.get(source)
        if unit is None or (unit.messages and len(unit.items) + len(items) > max_readings):
            unit = open_units[source] = Unit(source)
            units.append(unit)
        unit.messages.append(msg)
        unit.items.extend(items)
    for unit in units:
        unit.items = in_write_order(unit.items)
    return units


def in_write_order(items: Sequence[Reading | Rejected]) -> list[Reading | Rejected]:
    readings = sorted((i for i in items if isinstance(i, Reading)), key=lambda r: (r.datastream_id, r.phenomenon_time))
    return [*readings, *(i for i in items if isinstance(i, Rejected))]


# ── the worker role in the runtime, and its process ────────────────────────────────────────


class QueueWorker:
    """The worker role's service: consume the ingest queue through ``pipeline`` until stopped.

    Its own NATS connection carries the queue and, unless ``events`` is None, the pipeline's
    ``observation.stored`` events. Stopping finishes and acknowledges the batch in hand first.
    """

    def __init__(self, pipeline: Pipeline, bus_url: str, *, batch: int = BATCH, stream: IngestStream = INGEST,
                 events: EventStream | None = EVENTS) -> None:
        self.pipeline, self.bus_url, self.batch, self.stream, self.events = pipeline, bus_url, batch, stream, events
        self.worker: Worker | None = None
        self._stop = asyncio.Event()
        self._running: asyncio.Task | None = None

    async def start(self) -> None:
        self.nc = await connect_nats(self.bus_url, "haechi-worker")
        try:
            if self.events is not None:
                self.pipeline.bus = NatsBus(self.nc, self.events, "haechi-worker")
                await self.pipeline.bus.start()
            await anyio.to_thread.run_sync(self.pipeline.warm)
            self.subscription = await worker_subscription(self.nc.jetstream(), self.stream)
        except BaseException:
            await _disconnect(self.nc)
            raise
        self.worker = Worker(self.nc, self.subscription, self.pipeline, self.batch, self.stream.ack_wait_s)
        log.info("worker consuming %s as %s into %s", self.stream.name, self.stream.durable,
                 self.pipeline.engine.url.render_as_string(hide_password=True))
        self._running = asyncio.create_task(self.worker.run(self._stop), name="queue-worker")

    async def until(self, stop: asyncio.Event) -> None:
        """Return when ``stop`` is set, or at once should the loop end by itself (a failure)."""
        asked = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({asked, self._running}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            asked.cancel()

    async def stop(self) -> None:
        self._stop.set()
        try:
            await self._running  # a failure of the loop is raised here
            self.worker._log_totals(every_s=0)
            await self.subscription.unsubscribe()  # whatever it still held un-acked is redelivered to the others
        finally:
            await _disconnect(self.nc)

    @property
    def totals(self) -> Totals:
        return self.worker.totals if self.worker else Totals()


async def serve(database_url: str, bus_url: str, *, batch: int = BATCH, stream: IngestStream = INGEST,
                events: EventStream | None = EVENTS, stop: asyncio.Event | None = None) -> Totals:
    """Run the worker role until ``stop`` is set (or, when no ``stop`` is given, SIGTERM/SIGINT arrives).

    The batch in hand is finished and acknowledged first. ``events``: where the pipeline's
    ``observation.stored`` events go (None: not published).
    """
    engine = await anyio.to_thread.run_sync(open_db, database_url)
    context = Context.of(engine, Settings(database_url=database_url, bus_url=bus_url), pipeline=Pipeline(engine),
                         name="haechi-worker", options={"worker": {"batch": batch, "stream": stream, "events": events}})
    try:
        runtime = Runtime(PARTS, {Role.WORKER}, context)
        await runtime.start()
        queue: QueueWorker = runtime["queue_worker"]
        try:
            if stop is not None:
                await queue.until(stop)
            else:
                with stopped_by_signals() as signalled:
                    await queue.until(signalled)
        finally:
            await runtime.stop()
        return queue.totals
    finally:
        engine.dispose()


async def _disconnect(nc: NatsClient) -> None:
    """Send the last acknowledgements, then close (drain would wait on the pull inbox for nothing)."""
    with contextlib.suppress(Exception):
        await nc.flush()
    with contextlib.suppress(Exception):
        await nc.close()


def run(database_url: str, bus_url: str, **options) -> Totals:
    """Blocking entry point (the CLI and test subprocesses): ``serve`` in a fresh event loop."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return asyncio.run(serve(database_url, bus_url, **options))
