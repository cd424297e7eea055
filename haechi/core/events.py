"""Typed events and the bus protocol: capabilities meet through events, never by calling each other."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
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


Handler = Callable[[Event], Awaitable[None]]


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


def matches(pattern: str, event_type: str) -> bool:
    """NATS-style subject matching, so the in-process bus and NATS agree on patterns."""
    want, have = pattern.split("."), event_type.split(".")
    for i, part in enumerate(want):
        if part == ">":
            return len(have) > i
        if i >= len(have) or (part != "*" and part != have[i]):
            return False
    return len(want) == len(have)
