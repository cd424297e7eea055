"""Requests to an official API: one at a time within its rate limit, transient errors retried with
exponential back-off, a refused key or an exhausted quota never retried, and the key never logged.

Every answer is read by the API family's reader (``answers.py``), which says what it means: data,
no data, or one of the errors below. All traffic goes through the SSRF-safe transport of
``haechi/core/egress.py`` (the official hosts are public addresses); tests hand in a transport
serving recorded answers.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, urlsplit

import httpx

log = logging.getLogger(__name__)


class FeedError(Exception):
    """A request that did not give data; ``status`` is what the run becomes, ``reason`` says why."""

    status = "failed"
    retry = False

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class KeyRefused(FeedError):
    status = "key_refused"


class QuotaExceeded(FeedError):
    status = "quota"


class Transient(FeedError):
    retry = True


OUTCOMES = {"key_refused": KeyRefused, "quota": QuotaExceeded, "transient": Transient, "failed": FeedError}


def error_for(outcome: str, reason: str) -> FeedError:
    return OUTCOMES.get(outcome, FeedError)(reason)


@dataclass(frozen=True)
class Limits:
    """How a connector treats its API: requests a second, attempts per request, first back-off, timeout."""

    requests_per_s: float
    attempts: int
    backoff_s: float
    timeout_s: float


class Redactor(logging.Filter):
    """Blanks service keys out of every log record of the HTTP stack (httpx logs each request's URL)."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        hidden = message
        for secret in self.secrets:
            hidden = hidden.replace(secret, "***").replace(quote(secret, safe=""), "***")
        if hidden != message:
            record.msg, record.args = hidden, ()
        return True


REDACTOR = Redactor()
for _name in ("httpx", "httpcore"):
    logging.getLogger(_name).addFilter(REDACTOR)


def default_transport() -> httpx.AsyncBaseTransport:
    from haechi.core.egress import GuardedTransport, WebhookPolicy

    return GuardedTransport(WebhookPolicy())


class ApiClient:
    """GETs to one API; ``requests`` and ``retries`` count what a run cost."""

    def __init__(self, limits: Limits, key: str, transport: httpx.AsyncBaseTransport | None = None,
                 sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.limits, self.sleep, self.clock = limits, sleep, clock
        REDACTOR.secrets.add(key)
        self._client = httpx.AsyncClient(transport=transport or default_transport(), timeout=limits.timeout_s)
        self._next_at = 0.0
        self.requests = self.retries = 0

    async def close(self) -> None:
        await self._client.aclose()

    async def get(self, url: str, read: Callable[[httpx.Response], Any], params: dict | None = None) -> Any:
        """``read(response)`` of a GET, retrying transient errors; raises the last :class:`FeedError`."""
        error: FeedError | None = None
        for attempt in range(self.limits.attempts):
            if attempt:
                delay = self.limits.backoff_s * 2 ** (attempt - 1)
                self.retries += 1
                await self.sleep(delay)
            try:
                return read(await self._send(url, params))
            except FeedError as exc:
                if not exc.retry:
                    raise
                error = exc
            log.info("%s: %s (attempt %d of %d)", urlsplit(url).hostname, error.reason, attempt + 1,
                     self.limits.attempts)
        raise error

    async def _send(self, url: str, params: dict | None) -> httpx.Response:
        await self._wait_turn()
        self.requests += 1
        try:
            return await self._client.get(url, params=params)
        except httpx.TimeoutException:
            raise Transient(f"{urlsplit(url).hostname} did not answer within {self.limits.timeout_s:g} s") from None
        except httpx.TransportError as exc:
            raise Transient(f"could not reach {urlsplit(url).hostname}: {type(exc).__name__}") from None

    async def _wait_turn(self) -> None:
        """Keep to the API's rate: each request at least 1/requests_per_s after the one before."""
        now = self.clock()
        if self._next_at > now:
            await self.sleep(self._next_at - now)
        self._next_at = max(now, self._next_at) + 1 / self.limits.requests_per_s
