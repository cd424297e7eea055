"""Shed load, never fall over: per-client limits on public writes, and a bound on reads in flight.

Two pure ASGI middlewares, configured by ``shedding.toml`` (its comments say why each figure):

- :class:`WriteLimits` answers a public write beyond its client's token bucket with 429, a
  ``Retry-After`` and a problem+json body, before anything is read, stored or audited (a refusal
  that cost a database write would not shed anything). Staff tokens are never limited.
- :class:`ReadBound` lets a read beyond the process's reads in flight wait a short, bounded while
  for a slot, then answers it 503 with ``Retry-After``, instead of letting it wait in an unbounded
  queue; probes, metrics and the live streams are never shed.

The client is ``scope["client"]``: the peer, or, from a trusted proxy, the address it forwarded
(uvicorn's ``ProxyHeadersMiddleware``, wired in ``app.py`` with ``HAECHI_TRUSTED_PROXIES``).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import Engine
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Receive, Scope, Send

from haechi.core.buckets import TokenBuckets, retry_after
from haechi.model.access import CITY_EDITORS

from .auth import identify
from .metrics import SHED
from .problems import PROBLEM_JSON, PROBLEM_SCHEMA, prefers_korean, problem_response

log = logging.getLogger(__name__)

CONFIG = Path(__file__).with_name("shedding.toml")
#: Admins, operators and district officials: the staff, whose calls are never rate-limited.
STAFF = CITY_EDITORS
READS = frozenset({"GET", "HEAD"})


# ── configuration ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True, slots=True)
class WriteRule:
    """One limit: which writes it counts, from whom, and how many per client."""

    name: str
    methods: frozenset[str]
    paths: tuple[re.Pattern[str], ...]  # none: every path
    anonymous_only: bool
    burst: int
    per_minute: float

    def counts(self, method: str, path: str, anonymous: bool) -> bool:
        return (method in self.methods and (anonymous or not self.anonymous_only)
                and (not self.paths or any(p.fullmatch(path) for p in self.paths)))


@dataclass(frozen=True, slots=True)
class Shedding:
    """What ``shedding.toml`` (or ``HAECHI_SHEDDING_FILE``) says."""

    max_in_flight: int
    max_waiting: int
    max_wait_s: float
    retry_after_s: int
    exempt: frozenset[str]
    writes: tuple[WriteRule, ...]


def load(path: str | Path | None = None) -> Shedding:
    with open(path or CONFIG, "rb") as f:
        spec = tomllib.load(f)
    reads = spec["reads"]
    return Shedding(int(reads["max_in_flight"]), int(reads["max_waiting"]), float(reads["max_wait_s"]),
                    int(reads["retry_after_s"]), frozenset(reads["exempt"]),
                    tuple(_rule(w) for w in spec.get("writes", [])))


def _rule(spec: dict[str, Any]) -> WriteRule:
    if spec["callers"] not in ("public", "anonymous"):
        raise ValueError(f"write limit {spec['name']!r}: callers must be public or anonymous")
    paths = tuple(re.compile(re.escape(p).replace(r"\*", "[^/]+")) for p in spec.get("paths", []))
    return WriteRule(spec["name"], frozenset(spec["methods"]), paths, spec["callers"] == "anonymous",
                     int(spec["burst"]), float(spec["per_minute"]))


class WriteLimiter:
    """The write rules and a set of buckets per rule; ``clock`` in seconds (monotonic)."""

    def __init__(self, rules: tuple[WriteRule, ...], clock: Callable[[], float] = time.monotonic) -> None:
        self.rules, self.clock = rules, clock
        self.buckets = {rule.name: TokenBuckets(rule.burst, rule.per_minute) for rule in rules}

    def rule_for(self, method: str, path: str, anonymous: bool) -> WriteRule | None:
        return next((r for r in self.rules if r.counts(method, path, anonymous)), None)

    def take(self, rule: WriteRule, client: str) -> float:
        return self.buckets[rule.name].take(client, self.clock())


def client_key(scope: Scope) -> str:
    """Who to count: the client's address; an IPv6 one by its /64, the block one subscriber is given."""
    host = (scope.get("client") or ("unknown", 0))[0]
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return host
    if isinstance(address, ipaddress.IPv4Address):
        return host
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.IPv6Network((address, 64), strict=False))


# ── the middlewares ────────────────────────────────────────────────────────────────────────


class WriteLimits:
    """ASGI middleware: 429 for a public write beyond its client's bucket (first matching rule)."""

    def __init__(self, app: ASGIApp, engine: Engine, limiter: WriteLimiter) -> None:
        self.app, self.engine, self.limiter = app, engine, limiter

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        refusal = await self._refusal(scope) if scope["type"] == "http" and scope["method"] not in READS else None
        await (refusal or self.app)(scope, receive, send)

    async def _refusal(self, scope: Scope) -> JSONResponse | None:
        """The 429 for a write beyond its client's bucket, or None to let it through."""
        anonymous = "authorization" not in Headers(scope=scope)
        rule = self.limiter.rule_for(scope["method"], scope["path"], anonymous)
        if rule is None or (not anonymous and await self._staff(scope)):
            return None
        wait = self.limiter.take(rule, client_key(scope))
        if not wait:
            return None
        scope[SHED] = True  # never routed: /metrics counts it as route="shed"
        return too_many(Request(scope), rule, retry_after(wait))

    async def _staff(self, scope: Scope) -> bool:
        """Whether the token is staff's; looked up once, the route and the audit reuse the answer."""
        try:
            caller = await run_in_threadpool(identify, self.engine, scope)
        except Exception:  # the DB is down: counted, and the route answers 503 for it
            log.warning("could not look up the caller of %s %s", scope["method"], scope["path"], exc_info=True)
            return False
        return caller.principal is not None and caller.principal.role in STAFF


def too_many(request: Request, rule: WriteRule, seconds: int) -> JSONResponse:
    limit_en = f"at most {rule.burst} at once and {rule.per_minute:g} a minute from one address"
    limit_ko = f"한 주소에서 한 번에 {rule.burst}건, 1분에 {rule.per_minute:g}건까지"
    detail = {"en": f"too many {rule.name} from your address ({limit_en}); retry in {seconds} s",
              "ko": f"요청이 너무 많습니다 ({limit_ko}). {seconds}초 후에 다시 보내세요"}
    return problem_response(request, 429, _both(request, detail), slug="rate-limited",
                            headers={"Retry-After": str(seconds)}, retry_after_s=seconds)


class ReadBound:
    """ASGI middleware: at most ``max_in_flight`` reads at once, and a bounded wait for the next ones.

    A read beyond the bound waits for a slot, at most ``max_wait_s`` and with at most
    ``max_waiting`` others; past either it gets 503 and ``Retry-After``. The short wait costs no
    work (a parked coroutine), and spares a server whose clients ask again the moment they are
    refused from spending itself on refusals (docs/benchmarks.md, overload).
    """

    def __init__(self, app: ASGIApp, bound: Shedding) -> None:
        self.app, self.bound = app, bound
        self.slots = asyncio.Semaphore(bound.max_in_flight)
        self.in_flight = self.waiting = 0
        self.shed = 0  # reads answered 503 since start-up

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in READS or scope["path"] in self.bound.exempt:
            await self.app(scope, receive, send)
            return
        if not await self._slot():
            self.shed += 1
            scope[SHED] = True
            await self._overloaded(Request(scope))(scope, receive, send)
            return
        self.in_flight += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.in_flight -= 1
            self.slots.release()

    async def _slot(self) -> bool:
        """A slot now, or within the wait allowed; False when there is none to wait for."""
        if not self.slots.locked():
            await self.slots.acquire()  # free: returns at once
            return True
        if self.waiting >= self.bound.max_waiting:
            return False
        self.waiting += 1
        try:  # wait_for returns the slot even when it came as the time ran out: none is lost
            await asyncio.wait_for(self.slots.acquire(), self.bound.max_wait_s)
        except TimeoutError:
            return False
        finally:
            self.waiting -= 1
        return True

    def _overloaded(self, request: Request) -> JSONResponse:
        seconds, busy = self.bound.retry_after_s, self.bound.max_in_flight
        detail = {"en": f"this server is answering {busy} requests already; retry in {seconds} s",
                  "ko": f"서버가 이미 요청 {busy}건을 처리하고 있습니다. {seconds}초 후에 다시 시도하세요"}
        return problem_response(request, 503, _both(request, detail), slug="overloaded",
                                headers={"Retry-After": str(seconds)}, retry_after_s=seconds)


def _both(request: Request, detail: dict[str, str]) -> str:
    """Korean and English, the caller's preferred language first (``Accept-Language``)."""
    first, second = ("ko", "en") if prefers_korean(request) else ("en", "ko")
    return f"{detail[first]} · {detail[second]}"


# ── OpenAPI ────────────────────────────────────────────────────────────────────────────────

_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait before retrying · 재시도까지 기다릴 초",
                                "schema": {"type": "integer", "minimum": 1}}}

#: For the ``responses`` of a rate-limited route.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests from this address; retry after `Retry-After` seconds "
                         "(staff tokens are not limited) · 요청이 너무 많음",
          "headers": _RETRY_AFTER, "content": {PROBLEM_JSON: {"schema": PROBLEM_SCHEMA}}},
}
