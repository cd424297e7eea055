"""Typed events and the bus protocol: capabilities meet through events, never by calling each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from .clock import utcnow


@dataclass(frozen=True, slots=True)
class Event:
    """Something that happened: ``type`` is dotted (``observation.created``, ``city.loaded``)."""

    type: str
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)
    #: Its place on the bus, given by the bus as it delivers the event (a JetStream sequence, or the
    #: in-process bus's own counter); None before publishing. A live-stream client resumes from it
    #: (Last-Event-ID). Not part of what the event says: equal events stay equal with or without it.
    id: str | None = field(default=None, compare=False)


Handler = Callable[[Event], Awaitable[None]]


class Lagged(Exception):
    """A follower fell further behind than its feed may hold: what waited for it was dropped.

    Nothing is lost on the bus: the follower resumes from the last event it took (its id).
    """

    def __init__(self, dropped: int) -> None:
        super().__init__(f"fell behind by {dropped} events")
        self.dropped = dropped


class Feed(Protocol):
    """One follower's events (``Bus.follow``): matching ones only, in bus order, each once, with its id."""

    #: The follower asked to resume after an id the bus no longer holds (too old, or another
    #: process's): events come from now on, and the follower must reload what it shows.
    reset: bool
    #: The id of the last event before this feed's first one: where the follower stands if it
    #: takes nothing (None only if the bus gives no ids).
    position: str | None

    async def next(self, timeout: float) -> Event | None:
        """The next event, or None if none came within ``timeout`` s.

        Raises ``Lagged`` once more events waited for this follower than its limit allows.
        """
        ...

    def close(self) -> None:
        """Stop the feed (safe in a cancelled task: whatever the bus frees remotely, it frees in the background)."""
        ...


class Bus(Protocol):
    """Publish/subscribe by event-type pattern (``*`` matches any one dotted segment, ``>`` the rest)."""

    async def publish(self, event: Event) -> None: ...

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        """Register ``handler``; returns a function that unsubscribes it."""
        ...

    def wants(self, event_type: str) -> bool:
        """Whether publishing ``event_type`` reaches anyone (a durable stream always does).

        Lets a hot path skip building events nobody would receive.
        """
        ...

    async def follow(self, patterns: Sequence[str], *, after: str | None = None, including: bool = False,
                     limit: int) -> Feed:
        """A feed of the events matching any of ``patterns``, for one reader at its own pace (a live-stream client).

        From now on, or from just after the event with id ``after`` (from that event itself when
        ``including``), the way a client that reconnects with Last-Event-ID misses nothing. When
        the bus no longer holds that event, the feed starts now with ``reset`` set. More than
        ``limit`` events waiting for a reader that does not take them: it gets ``Lagged``.
        """
        ...


def matches(pattern: str, event_type: str) -> bool:
    """NATS-style subject matching, so the in-process bus and NATS agree on patterns."""
    want, have = pattern.split("."), event_type.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)
