"""The NATS JetStream bus: the scale-out twin of the in-process bus.

Events are JSON (``{"type", "data", "at"}``) on ``<subject>.<event type>`` in one stream, so the
bus's patterns (``*`` one segment, ``>`` the rest) are NATS's own. Each subscription is a pull
consumer, durable for a service's handlers (what is published while a subscriber is down waits
for it, and processes subscribing under the same durable name share the work: a queue group),
ephemeral for per-call closures. Handlers get each event at least once; a failing handler's
event is redelivered a few times, then given up with an error in the log, so one broken listener
cannot stall the rest of its stream.

A live-stream client ``follow``s the bus through an ephemeral consumer of its own, pulled only as
fast as it reads. An event's id is its stream sequence, one order shared by every process on the
stream: a client that reconnects to another API replica with ``Last-Event-ID: N`` gets a consumer
starting at N+1 and misses nothing the stream still keeps.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

import nats
import nats.errors
import nats.js.errors
import orjson
from nats.aio.client import Client as NatsClient
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import (
    AckPolicy,
    ConsumerConfig,
    DeliverPolicy,
    DiscardPolicy,
    RetentionPolicy,
    StorageType,
    StreamConfig,
)

from haechi.core.clock import utcnow
from haechi.core.errors import HaechiError
from haechi.core.events import Event, Handler, Lagged, matches
from haechi.model.events import ERASED_ONCE_HANDLED

log = logging.getLogger(__name__)

#: Deliveries of one event to a failing handler before it is given up (logged as an error).
MAX_DELIVER = 5
#: How many events one subscription pulls at a time, and how long one pull may wait.
PULL_BATCH, PULL_WAIT_S = 100, 5.0
#: A follower's consumer not pulled from for this long (its client stopped reading) is dropped by
#: the server; the client resumes from its Last-Event-ID on a new one.
FOLLOW_IDLE_S = 300.0
#: A subject token: what a follower's single pattern may use as the consumer's filter (else ``>``).
TOKEN = re.compile(r"[A-Za-z0-9_-]+|\*")


class BusUnavailable(HaechiError):
    """NATS did not take a message (down, unreachable, or no stream): the caller must not acknowledge."""

    status = 503
    title = "Service unavailable"


@dataclass(frozen=True, slots=True)
class EventStream:
    """Where events live: the stream's name, its subject prefix and how long events are kept."""

    name: str = "HAECHI_EVENTS"
    subject: str = "haechi.events"
    max_age_s: float = 7 * 24 * 3600

    @classmethod
    def of(cls, prefix: str) -> EventStream:
        """The stream of an installation by its prefix (``HAECHI_BUS_PREFIX``): "haechi" is :data:`EVENTS`."""
        return cls(name=f"{prefix.upper()}_EVENTS", subject=f"{prefix}.events")


EVENTS = EventStream()


async def connect_nats(url: str, name: str = "haechi", initial_attempts: int = 3) -> NatsClient:
    """A connection that keeps reconnecting for as long as the process lives (nats-py's own backoff).

    Raises ``BusUnavailable`` if the first connection fails ``initial_attempts`` times.
    """

    async def on_error(exc: Exception) -> None:
        log.warning("NATS %s: %s", url, exc)

    async def on_disconnect() -> None:
        if not (nc.is_closed or nc.is_draining):  # not our own close()
            log.warning("NATS %s disconnected; reconnecting", url)

    async def on_reconnect() -> None:
        log.info("NATS %s reconnected", url)

    nc = NatsClient()
    try:
        await nc.connect(
            url, name=name, max_reconnect_attempts=initial_attempts, reconnect_time_wait=1,
            error_cb=on_error, disconnected_cb=on_disconnect, reconnected_cb=on_reconnect)
    except Exception as exc:  # nats-py raises several unrelated types for "cannot connect"
        raise BusUnavailable(f"cannot connect to NATS at {url}: {exc}") from exc
    # a wrong URL fails fast at start-up; once connected, a server restart is waited out for good
    nc.options["max_reconnect_attempts"] = -1
    return nc


async def ensure_stream(js: JetStreamContext, config: StreamConfig) -> None:
    """Create the stream unless it exists; an existing stream is left as its operator configured it."""
    with contextlib.suppress(nats.js.errors.NotFoundError):
        await js.stream_info(config.name)
        return
    try:
        await js.add_stream(config)
    except nats.js.errors.BadRequestError:  # another process created it at the same moment
        await js.stream_info(config.name)


def safe_name(text: str) -> str:
    """``text`` as a consumer name: letters, digits, ``-`` and ``_`` only, short, still unique."""
    readable = re.sub(r"[^A-Za-z0-9_-]+", "_", text).strip("_")[:60]
    return f"{readable}-{hashlib.sha1(text.encode()).hexdigest()[:8]}"


def encode_event(event: Event) -> bytes:
    return orjson.dumps({"type": event.type, "data": event.data, "at": event.at.isoformat()},
                        option=orjson.OPT_NON_STR_KEYS)


def decode_event(payload: bytes, id: str | None = None) -> Event:
    """An event back from JSON; datetimes inside ``data`` arrive as ISO 8601 strings."""
    body = orjson.loads(payload)
    return Event(body["type"], body["data"], datetime.fromisoformat(body["at"]), id)


def sequence_id(msg: Msg) -> str:
    """An event's id on the bus: its stream sequence, the same in every process."""
    return str(msg.metadata.sequence.stream)


class NatsBus:
    """The Bus protocol over JetStream; see the module docstring for the delivery guarantees."""

    def __init__(self, nc: NatsClient, stream: EventStream = EVENTS, name: str = "haechi",
                 *, owns_connection: bool = False) -> None:
        self.nc, self.js, self.stream, self.name = nc, nc.jetstream(), stream, name
        self._owns_connection = owns_connection
        self._subscriptions: set[asyncio.Task] = set()
        self._cleanups: set[asyncio.Task] = set()  # followers' consumers being deleted
        self._ready: list[asyncio.Future] = []
        self._durables: set[str] = set()  # the durable consumers this bus pulls from now

    @classmethod
    async def connect(cls, url: str, stream: EventStream = EVENTS, name: str = "haechi") -> NatsBus:
        """Connect, create the event stream if missing, and return a bus that closes its connection."""
        bus = cls(await connect_nats(url, name), stream, name, owns_connection=True)
        await bus.start()
        return bus

    async def start(self) -> None:
        """Create the event stream if missing (``connect`` does this for you)."""
        await ensure_stream(self.js, StreamConfig(
            name=self.stream.name, subjects=[f"{self.stream.subject}.>"], retention=RetentionPolicy.LIMITS,
            storage=StorageType.FILE, discard=DiscardPolicy.OLD, max_age=self.stream.max_age_s))

    async def close(self) -> None:
        """Stop every subscription (durable ones keep their place on the server) and disconnect."""
        for task in list(self._subscriptions):
            task.cancel()
        await asyncio.gather(*self._subscriptions, *self._cleanups, return_exceptions=True)
        if self._owns_connection and not self.nc.is_closed:
            await self.nc.drain()

    # ── publish ──

    def subject(self, event_type: str) -> str:
        parts = event_type.split(".")
        if not all(parts) or any(p in ("*", ">") or re.search(r"\s", p) for p in parts):
            raise ValueError(f"event type {event_type!r} is not a dotted name without wildcards or spaces")
        return f"{self.stream.subject}.{event_type}"

    async def publish(self, event: Event) -> None:
        """Store the event in the stream; returns once JetStream has acknowledged it."""
        try:
            await self.js.publish(self.subject(event.type), encode_event(event), stream=self.stream.name)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusUnavailable(f"NATS did not take event {event.type}: {exc!r}") from exc

    def wants(self, event_type: str) -> bool:
        """Always: the stream keeps events for subscribers that are down or not yet started."""
        return True

    # ── subscribe ──

    def subscribe(self, pattern: str, handler: Handler, *, durable: str | None = None,
                  ephemeral: bool = False) -> Callable[[], None]:
        """Deliver matching events to ``handler`` until the returned function is called.

        Durable by default: the consumer is named ``durable`` or, failing that, after the bus
        name, the handler and the pattern, so a restarted service picks up where it left off and
        processes running the same handler share its events (a queue group). Closures, lambdas
        and callable objects hold per-call state (a dashboard client's live stream), so they get
        an ephemeral consumer, as does ``ephemeral=True``: it sees events from now on and
        vanishes when unsubscribed. A new consumer starts at the moment of this call.

        Must be called from within the running event loop; ``await bus.ready()`` waits until
        every subscription is in place on the server.
        """
        name = None if ephemeral else durable or self.durable_name(pattern, handler)
        ready = asyncio.get_running_loop().create_future()
        task = asyncio.create_task(self._consume(f"{self.stream.subject}.{pattern}", name, handler, utcnow(), ready))
        self._ready.append(ready)
        self._subscriptions.add(task)
        task.add_done_callback(self._subscriptions.discard)
        return task.cancel

    def durable_name(self, pattern: str, handler: Handler) -> str | None:
        """The default consumer name for ``handler``, or None when it should be ephemeral."""
        qualname = getattr(handler, "__qualname__", None)
        if qualname is None or "<" in qualname:  # a callable object, a closure or a lambda
            return None
        return safe_name(f"{self.name}-{handler.__module__}.{qualname}-{pattern}")

    async def ready(self) -> None:
        """Wait until every subscription made so far exists on the server (raises if one failed)."""
        pending, self._ready = self._ready, []
        await asyncio.gather(*pending)

    async def consumer_lag(self) -> dict[str, int]:
        """How far behind each durable consumer of this bus is: events not yet delivered to it
        (``num_pending``) plus those delivered and not yet acknowledged (``num_ack_pending``)."""
        lag = {}
        for name in sorted(self._durables):
            info = await self.js.consumer_info(self.stream.name, name)
            lag[name] = (info.num_pending or 0) + (info.num_ack_pending or 0)
        return lag

    async def _consume(self, subject: str, durable: str | None, handler: Handler, since: datetime,
                       ready: asyncio.Future) -> None:
        try:
            sub = await self._pull_subscription(subject, durable, since)
            consumer = durable or (await sub.consumer_info()).name
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the waiter in ready() hears it
            ready.set_exception(BusUnavailable(f"cannot subscribe to {subject}: {exc!r}"))
            return
        ready.set_result(None)
        if durable is not None:
            self._durables.add(durable)
        try:
            while (msgs := await self._pull(sub, consumer)) is not None:
                for msg in msgs:
                    await self._deliver(msg, handler)
        finally:
            self._durables.discard(durable)
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
                if durable is None:  # the server would also drop it after inactive_threshold
                    await self.js.delete_consumer(self.stream.name, consumer)

    async def _pull_subscription(self, subject: str, durable: str | None, since: datetime):
        config = ConsumerConfig(
            ack_policy=AckPolicy.EXPLICIT, max_deliver=MAX_DELIVER, deliver_policy=DeliverPolicy.BY_START_TIME,
            opt_start_time=since, inactive_threshold=None if durable else 300.0)
        for attempt in range(3):
            try:
                return await self.js.pull_subscribe(subject, durable=durable, stream=self.stream.name, config=config)
            except nats.js.errors.BadRequestError:  # another process created the same durable just now
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    # ── follow: one live-stream client ──

    async def follow(self, patterns: Sequence[str], *, after: str | None = None, including: bool = False,
                     limit: int) -> JetStreamFeed:
        """See ``Bus.follow``: an ephemeral consumer starting after ``after`` (a stream sequence).

        One consumer for all of ``patterns``, so the client's ids come in one order: a single
        pattern is its filter, several share ``>`` and are matched here (NATS 2.9 filters on one
        subject only). Nothing to acknowledge: a follower is never redelivered to.
        """
        try:
            state = (await self.js.stream_info(self.stream.name)).state
            start, reset = start_sequence(after, including, state.first_seq, state.last_seq)
            sub = await self.js.pull_subscribe(
                f"{self.stream.subject}.{follow_filter(patterns)}", durable=None, stream=self.stream.name,
                config=ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                      opt_start_seq=start, inactive_threshold=FOLLOW_IDLE_S))
            consumer = (await sub.consumer_info()).name
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:
            raise BusUnavailable(f"cannot follow {', '.join(patterns)} on NATS: {exc!r}") from exc
        return JetStreamFeed(self, sub, consumer, patterns, limit, reset=reset, position=str(start - 1),
                             live_from=state.last_seq)

    def _forget(self, sub, consumer: str) -> None:
        """Delete a follower's consumer in the background (its client's request is being cancelled)."""

        async def forget() -> None:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
                await self.js.delete_consumer(self.stream.name, consumer)

        try:
            task = asyncio.get_running_loop().create_task(forget())
        except RuntimeError:  # no loop any more (shutting down): the server drops it after FOLLOW_IDLE_S
            return
        self._cleanups.add(task)
        task.add_done_callback(self._cleanups.discard)

    async def _pull(self, sub, consumer: str, timeout: float = PULL_WAIT_S) -> list[Msg] | None:
        """The next events, [] when none came, None once the connection is closing."""
        try:
            return await sub.fetch(PULL_BATCH, timeout=timeout)
        except (TimeoutError, nats.errors.TimeoutError):
            return []
        except (nats.errors.ConnectionClosedError, nats.errors.ConnectionDrainingError):
            return None
        except nats.errors.Error as exc:  # reconnecting: nats-py comes back by itself
            log.warning("pull for %s failed (%s); retrying", consumer, exc)
            await asyncio.sleep(1)
            return []

    async def _deliver(self, msg: Msg, handler: Handler) -> None:
        try:
            event = decode_event(msg.data, sequence_id(msg))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.error("dropping an undecodable event on %s: %s: %r", msg.subject, exc, msg.data[:200])
            await msg.term()
            return
        try:
            await handler(event)
        except Exception:
            tries = msg.metadata.num_delivered
            if tries >= MAX_DELIVER:
                log.exception("handler %r failed on %s %d times; giving the event up", handler, event.type, tries)
                await msg.term()
            else:
                log.exception("handler %r failed on %s; redelivering", handler, event.type)
                await msg.nak(delay=min(2.0**tries, 30.0))
            return
        await msg.ack()
        if event.type in ERASED_ONCE_HANDLED:
            await self._erase(msg)

    async def _erase(self, msg: Msg) -> None:
        """Delete a handled event from the stream (personal data, see ERASED_ONCE_HANDLED)."""
        try:
            await self.js.delete_msg(self.stream.name, msg.metadata.sequence.stream)
        except (TimeoutError, nats.errors.Error, nats.js.errors.Error) as exc:  # it ages out with the rest
            log.warning("could not erase handled %s event %s: %r", msg.subject, msg.metadata.sequence.stream, exc)


def start_sequence(after: str | None, including: bool, first: int, last: int) -> tuple[int, bool]:
    """Where a follower's consumer starts, and whether that is a reset (``after`` is not in the stream).

    ``after`` from another kind of bus, past the stream's end (the stream was made anew) or older
    than what it keeps: the follower starts at the end and is told to reload.
    """
    if after is None:
        return last + 1, False
    if not after.isdigit() or int(after) > last:
        return last + 1, True
    start = int(after) + (0 if including else 1)
    if start < max(first, 1):
        return last + 1, True
    return start, False


def follow_filter(patterns: Sequence[str]) -> str:
    """The consumer's filter for a follower: its one pattern when it is a plain subject pattern, else ``>``."""
    if len(patterns) == 1:
        tokens = patterns[0].split(".")
        if all(TOKEN.fullmatch(t) for t in tokens[:-1]) and (tokens[-1] == ">" or TOKEN.fullmatch(tokens[-1])):
            return patterns[0]
    return ">"


class JetStreamFeed:
    """One follower's events from its own consumer, pulled only as fast as the reader takes them.

    The stream is the follower's queue: a slow reader holds no one up and loses nothing. One that
    falls more than ``limit`` live events behind is told so (``Lagged``), so a client's screen
    does not pass off old news as live; it resumes from its last id.
    """

    def __init__(self, bus: NatsBus, sub, consumer: str, patterns: Sequence[str], limit: int, *,
                 reset: bool, position: str, live_from: int) -> None:
        self._bus, self._sub, self._consumer = bus, sub, consumer
        self._patterns, self._limit, self._live_from = tuple(patterns), limit, live_from
        self.reset, self.position = reset, position
        self._pending: deque[Msg] = deque()
        self._closed = False
        self._pulled = asyncio.get_running_loop().time()

    async def next(self, timeout: float) -> Event | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            while self._pending:
                event = self._event(self._pending.popleft())
                if event is not None:
                    return event
            if loop.time() - self._pulled > FOLLOW_IDLE_S / 2:
                await self._still_there()
            left = deadline - loop.time()
            if left <= 0:
                return None
            msgs = await self._bus._pull(self._sub, self._consumer, max(left, 0.05))
            self._pulled = loop.time()
            if msgs is None:
                raise BusUnavailable("the NATS connection is closing")
            self._pending.extend(msgs)

    def _event(self, msg: Msg) -> Event | None:
        sequence, behind = msg.metadata.sequence.stream, msg.metadata.num_pending
        if sequence > self._live_from and behind > self._limit:
            raise Lagged(behind)
        try:
            event = decode_event(msg.data, str(sequence))
        except (orjson.JSONDecodeError, KeyError, TypeError, ValueError) as exc:
            log.error("skipping an undecodable event on %s: %s: %r", msg.subject, exc, msg.data[:200])
            return None
        return event if any(matches(p, event.type) for p in self._patterns) else None

    async def _still_there(self) -> None:
        """After a long stall in the reader: its consumer may be gone (the server drops idle ones)."""
        try:
            await self._sub.consumer_info()
        except nats.js.errors.NotFoundError:
            raise Lagged(0) from None

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._forget(self._sub, self._consumer)
