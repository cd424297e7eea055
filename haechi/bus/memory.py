"""The in-process asyncio bus: the embedded default."""

from __future__ import annotations

import asyncio
import logging
import secrets
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from itertools import islice

from haechi.core.events import Event, Handler, Lagged, matches

log = logging.getLogger(__name__)

#: Recent events kept so a live-stream client that reconnects resumes from its Last-Event-ID, by
#: weight: an event weighs 1 plus the items of its lists (a stored batch weighs its readings).
#: 50,000 readings hold about 20 MB: 10 s of a 5,000 obs/s surge, an hour of a city's usual flow,
#: far more than a browser's reconnect takes.
REPLAY_WEIGHT = 50_000


def weight(event: Event) -> int:
    return 1 + sum(len(v) for v in event.data.values() if isinstance(v, list))


class InProcessBus:
    """Delivers each event to every matching handler in this process, in order of subscription.

    A failing handler is logged and does not stop the others: one broken listener must not
    silence the warnings engine. Each published event gets an id, ``<epoch>-<n>``: ``n`` counts up
    in this process and ``epoch`` is drawn when the bus is made, so an id from before a restart
    (or from another process) is recognised as unknown instead of being mistaken for a recent one.
    """

    def __init__(self, replay_weight: int = REPLAY_WEIGHT) -> None:
        self._handlers: list[tuple[str, Handler]] = []
        self._groups: dict[tuple[tuple[str, ...], int], _Group] = {}
        self._epoch, self._count = secrets.token_hex(4), 0
        self._recent: deque[Event] = deque()
        self._weight, self._replay_weight = 0, replay_weight

    async def publish(self, event: Event) -> None:
        event = self._numbered(event)
        for group in self._groups.values():  # never waits: a slow reader holds no one up
            if group.wants(event.type):
                group.add(event)
        handlers = [h for pattern, h in self._handlers if matches(pattern, event.type)]
        results = await asyncio.gather(*(h(event) for h in handlers), return_exceptions=True)
        for handler, result in zip(handlers, results, strict=True):
            if isinstance(result, Exception):
                log.error("handler %r failed on %s", handler, event.type, exc_info=result)

    def wants(self, event_type: str) -> bool:
        return (any(matches(pattern, event_type) for pattern, _ in self._handlers)
                or any(g.wants(event_type) for g in self._groups.values()))

    def subscribe(self, pattern: str, handler: Handler) -> Callable[[], None]:
        entry = (pattern, handler)
        self._handlers.append(entry)
        return lambda: self._handlers.remove(entry)

    async def follow(self, patterns: Sequence[str], *, after: str | None = None, including: bool = False,
                     limit: int) -> _Follower:
        """See ``Bus.follow``: the backlog comes from the recent events kept, then what is published.

        Followers of the same patterns share one log of what they want (all of a city's portals
        follow ``alert.>``): publishing costs one append per kind of follower, not one per follower.
        """
        backlog = [] if after is None else self._since(after, including)
        key = (tuple(patterns), limit)
        group = self._groups.get(key) or self._groups.setdefault(key, _Group(key[0], limit))
        # no await since the backlog was taken: nothing falls between it and what the group gets next
        return _Follower(self, group, backlog or (), reset=backlog is None, position=self._id(self._count))

    def _leave(self, group: _Group) -> None:
        group.members -= 1
        if group.members == 0:
            self._groups.pop((group.patterns, group.limit), None)
            group.wake()

    # ── ids and the recent events ──

    def _id(self, n: int) -> str:
        return f"{self._epoch}-{n}"

    def _numbered(self, event: Event) -> Event:
        self._count += 1
        event = replace(event, id=self._id(self._count))
        self._recent.append(event)
        self._weight += weight(event)
        while self._weight > self._replay_weight and len(self._recent) > 1:
            self._weight -= weight(self._recent.popleft())
        return event

    def _since(self, after: str, including: bool) -> list[Event] | None:
        """The kept events after ``after`` (from it, ``including``); None when they are not all kept."""
        epoch, _, number = after.rpartition("-")
        if epoch != self._epoch or not number.isdigit() or int(number) > self._count:
            return None
        first = int(number) + (0 if including else 1)
        oldest = self._count - len(self._recent) + 1
        if first < oldest:
            return None
        return list(islice(self._recent, first - oldest, None))


class _Group:
    """The followers of the same patterns: the last ``limit`` events they want, and who waits for more.

    ``log[i]`` is the group's event number ``base + i``; each follower holds the number of the next
    one it takes. One whose next event has left the log had more than ``limit`` waiting: it lags.
    Those waiting are woken together, by the next event or by one timer for the group (their
    ``timeout``): not a timer per follower and wake-up, which 10,000 clients would feel.
    """

    def __init__(self, patterns: tuple[str, ...], limit: int) -> None:
        self.patterns, self.limit = patterns, limit
        self.log: deque[Event] = deque()
        self.base, self.members = 0, 0
        self.waiting: set[asyncio.Future] = set()
        self._wanted: dict[str, bool] = {}
        self._timer: asyncio.TimerHandle | None = None

    @property
    def head(self) -> int:
        return self.base + len(self.log)

    def wants(self, event_type: str) -> bool:
        wanted = self._wanted.get(event_type)
        if wanted is None:
            wanted = self._wanted[event_type] = any(matches(p, event_type) for p in self.patterns)
        return wanted

    def add(self, event: Event) -> None:
        self.log.append(event)
        if len(self.log) > self.limit:
            self.log.popleft()
            self.base += 1
        self.wake()

    def wait(self, timeout: float) -> asyncio.Future:
        """A future the next event sets, or the group's timer within ``timeout`` s (maybe sooner)."""
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self.waiting.add(waiter)
        if self._timer is None:
            self._timer = loop.call_later(timeout, self.wake)
        return waiter

    def wake(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        waiting, self.waiting = self.waiting, set()
        for waiter in waiting:
            if not waiter.done():
                waiter.set_result(None)


class _Follower:
    """One reader's feed: the backlog it resumed with, then its group's events from where it joined."""

    def __init__(self, bus: InProcessBus, group: _Group, backlog: Iterable[Event], *, reset: bool,
                 position: str) -> None:
        self._bus, self._group = bus, group
        self.reset, self.position = reset, position
        self._backlog = deque(e for e in backlog if group.wants(e.type))
        self._next = group.head
        self._closed = False
        group.members += 1

    async def next(self, timeout: float) -> Event | None:
        group = self._group
        if self._next == group.head and not self._backlog:
            waiter = group.wait(timeout)
            try:
                await waiter
            finally:
                group.waiting.discard(waiter)  # when the reader is cancelled (its client left)
            if self._next == group.head:
                return None  # the group's timer: nothing came
        if self._next < group.base:
            raise Lagged(group.head - self._next + len(self._backlog))
        if self._backlog:
            return self._backlog.popleft()
        event = group.log[self._next - group.base]
        self._next += 1
        return event

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._bus._leave(self._group)
