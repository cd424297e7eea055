"""The NATS JetStream bus: the scale-out twin of the in-process bus.

Events are JSON (``{"type", "data", "at"}``) on ``<subject>.<event type>`` in one stream, so the
bus's patterns (``*`` one segment, ``>`` the rest) are NATS's own. Each subscription is a pull
consumer, durable for a service's handlers (what is published while a subscriber is down waits
for it, and processes subscribing under the same durable name share the work: a queue group),
ephemeral for per-call closures such as one dashboard client's live stream. Handlers get
each event at least once; a failing handler's event is redelivered a few times, then given up
with an error in the log, so one broken listener cannot stall the rest of its stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import re
from collections.abc import Callable
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
from haechi.core.events import Event, Handler

log = logging.getLogger(__name__)

#: Deliveries of one event to a failing handler before it is given up (logged as an error).
MAX_DELIVER = 5
#: How many events one subscription pulls at a time, and how long one pull may wait.
PULL_BATCH, PULL_WAIT_S = 100, 5.0


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


def decode_event(payload: bytes) -> Event:
    """An event back from JSON; datetimes inside ``data`` arrive as ISO 8601 strings."""
    body = orjson.loads(payload)
    return Event(body["type"], body["data"], datetime.fromisoformat(body["at"]))


class NatsBus:
    """The Bus protocol over JetStream; see the module docstring for the delivery guarantees."""

    def __init__(self, nc: NatsClient, stream: EventStream = EVENTS, name: str = "haechi",
                 *, owns_connection: bool = False) -> None:
        self.nc, self.js, self.stream, self.name = nc, nc.jetstream(), stream, name
        self._owns_connection = owns_connection
        self._subscriptions: set[asyncio.Task] = set()
        self._ready: list[asyncio.Future] = []

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
        await asyncio.gather(*self._subscriptions, return_exceptions=True)
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

    async def _consume(self, subject: str, durable: str | None, handler: Handler, since: datetime,
                       ready: asyncio.Future) -> None:
        try:
            sub = await self._pull_subscription(subject, durable, since)
            consumer = durable or (await sub.consumer_info()).name
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the waiter in ready() hears it
            ready.set_exception(BusUnavailable(f"cannot subscribe to {subject}: {exc!r}"))
            return
        ready.set_result(None)
        try:
            while (msgs := await self._pull(sub, consumer)) is not None:
                for msg in msgs:
                    await self._deliver(msg, handler)
        finally:
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

    async def _pull(self, sub, consumer: str) -> list[Msg] | None:
        """The next events, [] when none came, None once the connection is closing."""
        try:
            return await sub.fetch(PULL_BATCH, timeout=PULL_WAIT_S)
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
            event = decode_event(msg.data)
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

