"""Public reads from memory: what everyone reads on a disaster day is rendered once per change.

On the day of a flood every citizen opens the portal and the alert feed at once, and aggregators
pull the feeds. Those answers change only when a warning or an alert does, so they are rendered
once and answered from memory until one of :data:`INVALIDATING_EVENTS` arrives on the bus (every
API replica hears them: in bus mode over NATS), and after at most :data:`EVENT_FRESH_S` anyway,
for a write whose event never reaches this process (``haechi alert issue`` runs beside the server
on a bus of its own).

A route opts in by calling :func:`share` with a :class:`Policy` (or is named in ``PATHS`` when it
is not ours, like ``/openapi.json``). Only anonymous requests (no ``Authorization``) are answered
from memory or stored, so a staff view never reaches a citizen and the other way round; answers
to authenticated requests are marked ``private, no-store`` so no shared cache keeps them. Every
shared answer carries a strong ``ETag``; ``If-None-Match`` (or ``If-Modified-Since``) gets a 304.
``HEAD`` is answered wherever ``GET`` is, by running the ``GET`` and sending its headers alone.
"""

from __future__ import annotations

import asyncio
import gzip
import hashlib
import inspect
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from haechi.core.events import Bus, Event
from haechi.model.events import ALERT_SENT, WARNING_ACKNOWLEDGED, WARNING_CHANGED

log = logging.getLogger(__name__)

#: What changes the feeds, the warnings in force and the alert documents: every cached answer
#: that depends on them is dropped when one is heard.
INVALIDATING_EVENTS = (WARNING_CHANGED, ALERT_SENT, WARNING_ACKNOWLEDGED)
#: How long an answer that events keep fresh is kept at most without one: the same 10 s a browser
#: or CDN may reuse it (``max-age`` below), so a write this process does not hear of is seen as
#: soon as through any cache in front of it.
EVENT_FRESH_S = 10.0
#: Memory the cache may take; the least recently used answers go first. The whole public side
#: (feeds in five languages, warnings, pages, scripts) takes a few megabytes.
MAX_BYTES = 64 * 1024 * 1024
#: Larger answers are not kept (bulk downloads stream; they are not what a surge reads).
MAX_ENTRY_BYTES = 4 * 1024 * 1024
#: Answers at least this long are kept gzipped too, for the clients that accept it (every browser,
#: CDN and feed reader): compressed once when stored, never per request. Below a packet's worth
#: compressing saves nothing.
GZIP_MIN_BYTES = 1024
GZIP_LEVEL = 6  # zlib's default: most of level 9's saving for a fraction of its time
#: Keys remembered as shared, for single-flight renders after an invalidation: every feed, language,
#: district and page a surge asks for, with room to spare; the oldest are forgotten beyond.
MAX_SHARED_KEYS = 10_000

STATE_KEY = "haechi.public_cache"


@dataclass(frozen=True, slots=True)
class Policy:
    """How a public answer may be kept: its ``Cache-Control`` for caches in front, whether events
    make it stale (then it is kept at most EVENT_FRESH_S), else how long it is kept here (None: until
    the process ends, as what changes only with a release)."""

    cache_control: str
    events: bool = False
    keep_s: float | None = None


#: Feeds and warnings in force: a browser, reverse proxy or CDN may reuse them 10 s, so a citizen
#: sees a new warning at most 10 s after the situation room does, while a surge of readers costs
#: this server one answer per 10 s per cache in front of it; and serve a copy up to 30 s older
#: while it fetches the new one, so a cache whose origin is slow under the surge still answers.
FEED = Policy("public, max-age=10, stale-while-revalidate=30", events=True)
#: One alert as sent (CAP XML or JSON): a sent message never changes (an Update is a new one).
DOCUMENT = Policy("public, max-age=300", events=True)
#: Pages (the portal, the room): short, so a new release is picked up within a minute; the
#: scripts and styles they name are fingerprinted, so a page never mixes two releases' assets.
PAGE = Policy("public, max-age=60")
#: A fingerprinted asset (``/static/room.js?v=<content hash>``): that URL always names those bytes.
IMMUTABLE = Policy("public, max-age=31536000, immutable")
#: An asset asked for without its fingerprint, or the OpenAPI document: short, like pages.
ASSET = Policy("public, max-age=60")
#: Areas, their boundaries and statistics: changed only by loading a city pack or importing
#: statistics, which no event announces (``haechi city load`` may run beside the server), so they
#: are kept a minute here, as long as a cache in front may keep them.
REFERENCE = Policy("public, max-age=60", keep_s=60.0)
#: Places (shelters, stations, facilities): written over the API, by imports and by loading a city
#: pack, the last two often in another process, so no event is relied on: kept at most
#: EVENT_FRESH_S, like the feeds, and a new or changed shelter reaches citizens as soon as a warning.
PLACES = Policy("public, max-age=10, stale-while-revalidate=30", keep_s=EVENT_FRESH_S)
#: What authenticated callers get: their answers may differ by role, and are never kept by others.
PRIVATE = "private, no-store"

#: Public answers of routes that are not Haechi's own (FastAPI's), by path.
PATHS: dict[str, Policy] = {"/openapi.json": ASSET}


def share(request: Request, policy: Policy) -> None:
    """Let this answer be kept and shared (when it is a 200 to an anonymous request)."""
    share_scope(request.scope, policy)


def share_scope(scope: Scope, policy: Policy) -> None:
    scope.setdefault("state", {})[STATE_KEY] = policy


def strong_etag(body: bytes) -> str:
    """The same bytes, the same tag: a content hash, so every replica agrees without talking."""
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


@dataclass(slots=True)
class Variant:
    """One representation of a stored answer (as is, or gzipped): headers, body and strong ETag."""

    headers: list[tuple[bytes, bytes]]
    body: bytes
    etag: bytes


@dataclass(slots=True)
class Entry:
    """A stored 200: as rendered, gzipped when that is worth it, and how it may be kept."""

    plain: Variant
    gzipped: Variant | None
    last_modified: str | None
    policy: Policy
    stored_at: float
    route: Any  # the matched route, so metrics count a hit under its template

    @property
    def size(self) -> int:
        return len(self.plain.body) + (len(self.gzipped.body) if self.gzipped else 0)

    def fresh(self, now: float) -> bool:
        keep = EVENT_FRESH_S if self.policy.events else self.policy.keep_s
        return keep is None or now - self.stored_at < keep

    def variant(self, request: _Look) -> Variant:
        return self.gzipped if self.gzipped is not None and request.gzip else self.plain


Key = tuple[str, bytes, str, bytes]


class PublicCache:
    """The store: answers by (scheme, host, path, query), dropped on the events that change them."""

    def __init__(self, max_bytes: int = MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[Key, Entry] = OrderedDict()
        self._bytes = 0
        self._generation = 0  # bumped on every invalidation: a render begun before one is not kept
        self._shared: OrderedDict[Key, None] = OrderedDict()  # keys stored before: concurrent misses render once
        self._rendering: dict[Key, asyncio.Future[Entry | None]] = {}
        self._listening: dict[int, Callable[[], None]] = {}
        self.hits = self.misses = 0

    # ── events ──

    def listen(self, bus: Bus) -> None:
        """Drop event-driven answers on :data:`INVALIDATING_EVENTS` published on ``bus``.

        On NATS each API replica needs every event (not a share of them), so it subscribes with
        an ephemeral consumer; the in-process bus has one subscriber list per process anyway.
        """
        if id(bus) in self._listening:
            return
        ephemeral = "ephemeral" in inspect.signature(bus.subscribe).parameters
        stops = [bus.subscribe(t, self._on_event, **({"ephemeral": True} if ephemeral else {}))
                 for t in INVALIDATING_EVENTS]
        self._listening[id(bus)] = lambda: [stop() for stop in stops]

    def stop_listening(self) -> None:
        for stop in self._listening.values():
            stop()
        self._listening.clear()

    async def _on_event(self, event: Event) -> None:
        self.invalidate()

    def invalidate(self) -> None:
        """Drop every answer that events keep fresh (pages and assets stay)."""
        self._generation += 1
        for key in [k for k, e in self._entries.items() if e.policy.events]:
            self._drop(key)

    # ── store ──

    def get(self, key: Key, now: float) -> Entry | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if not entry.fresh(now):
            self._drop(key)
            return None
        self._entries.move_to_end(key)
        return entry

    def put(self, key: Key, entry: Entry, generation: int) -> bool:
        """Keep ``entry`` unless an invalidation came while it was rendered (it may be stale)."""
        if generation != self._generation or entry.size > MAX_ENTRY_BYTES:
            return False
        self._drop(key)
        self._entries[key] = entry
        self._bytes += entry.size
        self._shared[key] = None
        self._shared.move_to_end(key)
        while self._bytes > self.max_bytes and self._entries:
            self._drop(next(iter(self._entries)))
        while len(self._shared) > MAX_SHARED_KEYS:  # queries nobody asks again fall out
            self._shared.popitem(last=False)
        return True

    def _drop(self, key: Key) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            self._bytes -= entry.size

    def __len__(self) -> int:
        return len(self._entries)


class PublicCacheMiddleware:
    """ASGI middleware answering anonymous GET and HEAD from a :class:`PublicCache`."""

    def __init__(self, app: ASGIApp, cache: PublicCache) -> None:
        self.app = app
        self.cache = cache

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("GET", "HEAD"):
            await self.app(scope, receive, send)
            return
        head = scope["method"] == "HEAD"
        if head:
            scope["method"] = "GET"  # answered as GET, its body left out (restored for the layers above)
            send = _without_body(send)
        try:
            request = _Look(scope)
            if request.authorized:
                await self.app(scope, receive, _private(send))
            elif request.stream:  # a live stream (EventSource) is never kept: no layer on each of its events
                await self.app(scope, receive, send)
            else:
                await self._anonymous(scope, receive, send, request)
        finally:
            if head:
                scope["method"] = "HEAD"

    async def _anonymous(self, scope: Scope, receive: Receive, send: Send, request: _Look) -> None:
        key: Key = (scope.get("scheme", "http"), request.host, scope["path"], scope.get("query_string", b""))
        cache = self.cache
        entry = cache.get(key, time.monotonic())
        if entry is None and key in cache._rendering:
            entry = await asyncio.shield(cache._rendering[key])  # someone renders it now: wait for theirs
        if entry is not None:
            cache.hits += 1
            if entry.route is not None:
                scope["route"] = entry.route  # metrics count it under its route template
            await _answer(entry, request, send)
            return
        cache.misses += 1
        pending: asyncio.Future[Entry | None] | None = None
        if key in cache._shared and key not in cache._rendering:  # kept before: the others wait for this render
            pending = cache._rendering[key] = asyncio.get_running_loop().create_future()
        try:
            entry = await self._render(scope, receive, send, request, key)
        finally:
            if pending is not None:
                del cache._rendering[key]
                pending.set_result(entry)
        if entry is not None:
            await _answer(entry, request, send)

    async def _render(self, scope: Scope, receive: Receive, send: Send, request: _Look, key: Key) -> Entry | None:
        """Run the app; a shareable 200 is kept and returned (not sent), anything else passes through."""
        generation = self.cache._generation
        scope["headers"] = [(k, v) for k, v in scope["headers"] if k not in CONDITIONAL]  # we answer those
        start: Message | None = None
        chunks: list[bytes] = []

        async def capture(message: Message) -> None:
            nonlocal start
            if start is None:
                policy = scope.get("state", {}).get(STATE_KEY) or PATHS.get(scope["path"])
                if message["status"] != 200 or policy is None:
                    start = {}  # not shareable: stream it through as it comes
                    await send(message)
                    return
                start = message
                return
            if not start:
                await send(message)
                return
            chunks.append(message.get("body", b""))

        await self.app(scope, receive, capture)
        if not start:
            return None
        policy = scope.get("state", {}).get(STATE_KEY) or PATHS[scope["path"]]
        entry = make_entry(start.get("headers", ()), b"".join(chunks), policy, scope.get("route"))
        self.cache.put(key, entry, generation)
        return entry


CONDITIONAL = frozenset({b"if-none-match", b"if-modified-since"})
DROPPED = frozenset({b"etag", b"cache-control", b"content-length", b"vary", b"content-encoding"})
#: Caches in front keep one copy per encoding, and never hand an anonymous copy to a token holder.
VARY = b"Accept-Encoding, Authorization"


def make_entry(headers: Any, body: bytes, policy: Policy, route: Any = None) -> Entry:
    """A rendered 200 as kept: strong ETags by content (every replica gives the same), gzipped too
    when it is text of some length."""
    headers = [(k.lower(), v) for k, v in headers]
    modified = next((v.decode("latin-1") for k, v in headers if k == b"last-modified"), None)
    kept = [(k, v) for k, v in headers if k not in DROPPED]
    kept += [(b"cache-control", policy.cache_control.encode()), (b"vary", VARY)]
    etag = strong_etag(body).encode()
    plain = Variant([*kept, (b"etag", etag), (b"content-length", str(len(body)).encode())], body, etag)
    gzipped = None
    media = next((v for k, v in headers if k == b"content-type"), b"").split(b";")[0].strip()
    if len(body) >= GZIP_MIN_BYTES and _compressible(media):
        packed = gzip.compress(body, GZIP_LEVEL, mtime=0)  # no time stamp: the same bytes on every replica
        tag = etag[:-1] + b'-gz"'  # another representation, another strong tag
        gzipped = Variant([*kept, (b"etag", tag), (b"content-encoding", b"gzip"),
                           (b"content-length", str(len(packed)).encode())], packed, tag)
    return Entry(plain, gzipped, modified, policy, time.monotonic(), route)


def _compressible(media: bytes) -> bool:
    return media.startswith(b"text/") or media.endswith((b"json", b"xml", b"javascript"))


async def _answer(entry: Entry, request: _Look, send: Send) -> None:
    variant = entry.variant(request)
    if _not_modified(entry, variant, request):
        headers = [(k, v) for k, v in variant.headers if k in (b"etag", b"cache-control", b"vary", b"last-modified")]
        await send({"type": "http.response.start", "status": 304, "headers": headers})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": variant.headers})
    await send({"type": "http.response.body", "body": variant.body})


def _not_modified(entry: Entry, variant: Variant, request: _Look) -> bool:
    """RFC 9110 conditional GET: If-None-Match decides when sent, else If-Modified-Since."""
    if request.if_none_match is not None:
        tags = {t.strip().removeprefix(b"W/") for t in request.if_none_match.split(b",")}
        return b"*" in tags or variant.etag in tags
    if request.if_modified_since is None or entry.last_modified is None:
        return False
    try:
        return parsedate_to_datetime(entry.last_modified) <= parsedate_to_datetime(
            request.if_modified_since.decode("latin-1"))
    except (TypeError, ValueError):
        return False  # an unreadable date is ignored, as RFC 9110 says


class _Look:
    """The few request headers the cache reads, found in one pass."""

    __slots__ = ("authorized", "gzip", "host", "if_modified_since", "if_none_match", "stream")

    def __init__(self, scope: Scope) -> None:
        self.authorized, self.gzip, self.stream, self.host = False, False, False, b""
        self.if_none_match = self.if_modified_since = None
        for name, value in scope["headers"]:
            if name == b"host":
                self.host = value
            elif name == b"authorization":
                self.authorized = True
            elif name == b"accept-encoding":
                self.gzip = accepts_gzip(value)
            elif name == b"accept":
                self.stream = b"text/event-stream" in value
            elif name == b"if-none-match":
                self.if_none_match = value
            elif name == b"if-modified-since":
                self.if_modified_since = value


def accepts_gzip(accept_encoding: bytes) -> bool:
    """Whether ``Accept-Encoding`` takes gzip (named, or ``*``), not refused with ``q=0``."""
    for part in accept_encoding.lower().split(b","):
        coding, _, params = part.partition(b";")
        if coding.strip() in (b"gzip", b"*"):
            weight = params.strip()
            return not (weight.startswith(b"q=") and weight[2:].strip(b" 0.") == b"")
    return False


def _private(send: Send) -> Send:
    """Mark an answer to an authenticated request as the caller's alone, whatever the route said."""

    async def marked(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = [(k, v) for k, v in message.get("headers", ()) if k.lower() != b"cache-control"]
            message = {**message, "headers": [*headers, (b"cache-control", PRIVATE.encode())]}
        await send(message)

    return marked


def _without_body(send: Send) -> Send:
    """HEAD: the GET's status and headers (Content-Length included), then an empty body, once."""
    done = False

    async def headers_only(message: Message) -> None:
        nonlocal done
        if message["type"] == "http.response.start":
            await send(message)
        elif message["type"] == "http.response.body" and not done:
            done = True
            await send({"type": "http.response.body", "body": b"", "more_body": False})

    return headers_only
