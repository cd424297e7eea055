"""The webhook dispatcher: each alert on the bus reaches every matching subscription, at least once.

The deliveries are an outbox: the alert's own transaction writes one pending delivery row per
matching subscription (``publish.plan_deliveries``), so an alert committed by an engine that died
before publishing ``alert.sent`` is delivered all the same. On ``alert.sent`` the dispatcher plans
again (a no-op for those alerts; it covers alerts stored by other means) and delivers in
background tasks: a slow or failing receiver never holds up the alert, the bus or the other
receivers. Every attempt is written to the delivery log before the next one is planned, so
pending deliveries survive a restart and a failover: :meth:`AlertDispatcher.start` resumes the
due ones, and a sweep picks up any that become due later (e.g. left behind by another process).

Each attempt is claimed first, in one conditional UPDATE with a lease (``alerting.claim_delivery``):
two dispatchers sweeping at once never send the same attempt, so each (alert, subscription) is
delivered once. The one window left is a dispatcher dying after the receiver answered but before
the answer was written: the lease runs out and the next one sends again, with the same
``X-Haechi-Delivery`` id for the receiver to drop (at least once on the wire, once to a receiver
that deduplicates).

Deliveries go only where the :class:`~.egress.WebhookPolicy` allows (public addresses, https); a
refused one is logged as failed with the reason, and not tried again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

import anyio.to_thread
import httpx
from sqlalchemy import Engine

from haechi.core.clock import utcnow
from haechi.core.egress import GuardedTransport, RefusedTarget, WebhookPolicy
from haechi.core.events import Bus, Event
from haechi.model.events import ALERT_SENT
from haechi.store import alerting

from .publish import plan_deliveries
from .webhooks import (
    Backoff,
    Outcome,
    after_attempt,
    classify,
    delivery_body,
    retry_after_seconds,
    signed_headers,
)

log = logging.getLogger(__name__)

#: How much of a refusing receiver's answer is kept in the log.
ERROR_SNIPPET = 300
#: Extra time past the request timeout before a claimed attempt may be taken over.
LEASE_MARGIN = timedelta(seconds=30)

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Job:
    """One claimed attempt: the delivery row, its alert and its subscription (with the secret)."""

    delivery: dict[str, Any]
    alert: dict[str, Any]
    subscription: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Response:
    """What came back from a receiver: a status, or an error when nothing did.

    ``refused``: Haechi itself would not send there (see ``egress.py``); final, like a 4xx.
    """

    status: int | None
    error: str | None = None
    retry_after_s: float | None = None
    refused: bool = False

    @property
    def outcome(self) -> Outcome:
        return Outcome.REJECTED if self.refused else classify(self.status)


class AlertDispatcher:
    """Delivers alerts to webhook subscriptions; start it with the app and stop it with it.

    ``public_url`` is where receivers can fetch the alert back (links in the JSON body).
    ``backoff`` sets the retry schedule and the number of attempts; ``timeout_s`` bounds each
    attempt; ``concurrency`` bounds attempts in flight; ``sweep_interval_s`` is how often due
    deliveries not already in hand are looked for. ``policy`` says where webhooks may go (by
    default public https addresses only). ``transport`` lets tests swap the HTTP layer; it
    replaces the address check made at connection time, not the URL check.
    """

    def __init__(
        self,
        engine: Engine,
        bus: Bus,
        *,
        public_url: str,
        backoff: Backoff | None = None,
        timeout_s: float = 10.0,
        concurrency: int = 16,
        sweep_interval_s: float = 30.0,
        policy: WebhookPolicy | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.engine = engine
        self.bus = bus
        self.public_url = public_url
        self.backoff = backoff or Backoff()
        self.timeout_s = timeout_s
        self.sweep_interval_s = sweep_interval_s
        self._lease = timedelta(seconds=timeout_s) + LEASE_MARGIN
        self._slots = asyncio.Semaphore(concurrency)
        self.policy = policy or WebhookPolicy()
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._unsubscribe: Callable[[], None] | None = None
        self._sweeper: asyncio.Task[None] | None = None

    # ── lifecycle ──────────────────────────────────────────────────────────────────────

    async def start(self) -> None:
        """Listen for ``alert.sent``, resume due pending deliveries, and sweep periodically."""
        self._client = httpx.AsyncClient(
            timeout=self.timeout_s, follow_redirects=False,
            transport=self._transport or GuardedTransport(self.policy),
        )
        self._unsubscribe = self.bus.subscribe(ALERT_SENT, self.on_alert_sent)
        await self.resume()
        self._sweeper = asyncio.create_task(self._sweep_forever(), name="webhook-sweep")

    async def stop(self) -> None:
        """Stop listening and cancel work in hand; unfinished deliveries stay pending in the DB."""
        if self._unsubscribe:
            self._unsubscribe()
            self._unsubscribe = None
        tasks = [t for t in (self._sweeper, *self._tasks.values()) if t is not None]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._sweeper = None
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def idle(self) -> None:
        """Wait until no delivery is in hand (every one delivered, failed, or left to the sweep)."""
        while self._tasks:
            await asyncio.wait(list(self._tasks.values()))

    @property
    def in_hand(self) -> frozenset[int]:
        """Ids of the deliveries this dispatcher is working on now."""
        return frozenset(self._tasks)

    # ── planning ───────────────────────────────────────────────────────────────────────

    async def on_alert_sent(self, event: Event) -> None:
        """Bus handler for ``alert.sent``: its data carry the stored alert's ``id``."""
        await self.dispatch(int(event.data["id"]))

    async def dispatch(self, alert_id: int) -> list[int]:
        """Plan the stored alert's deliveries and start them; returns the pending delivery ids.

        Idempotent: dispatching an alert again (a redelivered event) adds no deliveries.
        """
        delivery_ids = await self._db(self._plan, alert_id)
        for delivery_id in delivery_ids:
            self._start(delivery_id)
        return delivery_ids

    def _plan(self, alert_id: int) -> list[int]:
        with self.engine.begin() as conn:
            return plan_deliveries(conn, alerting.get_alert(conn, alert_id))

    async def resume(self) -> list[int]:
        """Start every due pending delivery not already in hand; returns their ids."""
        due = await self._db(self._due, self.in_hand)
        for delivery_id in due:
            self._start(delivery_id)
        return due

    def _due(self, in_hand: frozenset[int]) -> list[int]:
        with self.engine.begin() as conn:
            return alerting.due_deliveries(conn, utcnow(), skip=in_hand)

    async def _sweep_forever(self) -> None:
        while True:
            await asyncio.sleep(self.sweep_interval_s)
            try:
                await self.resume()
            except Exception:  # a DB hiccup must not end the sweeping
                log.exception("webhook sweep failed; trying again in %s s", self.sweep_interval_s)

    # ── delivering ─────────────────────────────────────────────────────────────────────

    def _start(self, delivery_id: int) -> None:
        if delivery_id in self._tasks:
            return
        task = asyncio.create_task(self._deliver(delivery_id), name=f"webhook-{delivery_id}")
        self._tasks[delivery_id] = task
        task.add_done_callback(lambda _: self._tasks.pop(delivery_id, None))

    async def _deliver(self, delivery_id: int) -> None:
        """Attempt until delivered, refused for good, out of attempts, or taken by someone else."""
        retry_in: float | None = 0.0
        while retry_in is not None:
            await asyncio.sleep(retry_in)
            try:
                async with self._slots:
                    retry_in = await self._attempt(delivery_id)
            except Exception:  # the row stays pending; the sweep resumes it
                log.exception("delivery %s: attempt aborted; it stays pending", delivery_id)
                return

    async def _attempt(self, delivery_id: int) -> float | None:
        """One attempt, logged; returns seconds until the next one, or ``None`` when done."""
        job = await self._db(self._claim, delivery_id)
        if job is None:
            return None
        attempts = job.delivery["attempts"]
        if not job.subscription["active"]:
            await self._record(delivery_id, "failed", None, "the subscription was deactivated")
            return None
        response = await self._post(job, delivery_id)
        outcome = response.outcome
        step = after_attempt(outcome, attempts, self.backoff, response.retry_after_s)
        error = response.error
        if step.status == "failed" and outcome is Outcome.RETRY:
            error = f"gave up after {attempts} attempts; last: {error}"
        await self._record(delivery_id, step.status, response.status, error, step.retry_in_s)
        if step.status == "failed":
            log.warning("delivery %s to %s failed: %s", delivery_id, job.subscription["url"], error)
        return step.retry_in_s

    def _claim(self, delivery_id: int) -> Job | None:
        with self.engine.begin() as conn:
            delivery = alerting.claim_delivery(conn, delivery_id, utcnow(), self._lease)
            if delivery is None:
                return None
            return Job(
                delivery,
                alerting.get_alert(conn, delivery["alert_id"]),
                alerting.get_subscription(conn, delivery["subscription_id"], with_secret=True),
            )

    async def _post(self, job: Job, delivery_id: int) -> Response:
        body, media_type = delivery_body(
            job.alert, job.subscription,
            delivery_id=delivery_id, event=ALERT_SENT, public_url=self.public_url,
        )
        headers = signed_headers(
            job.subscription["secret"], body,
            delivery_id=delivery_id, event=ALERT_SENT, media_type=media_type, now=utcnow(),
        )
        assert self._client is not None, "the dispatcher is not started"
        try:
            self.policy.check_url(job.subscription["url"])
            async with asyncio.timeout(self.timeout_s):
                return await self._send(job.subscription["url"], body, headers)
        except RefusedTarget as exc:
            return Response(None, f"refused by Haechi: {exc}", refused=True)
        except (httpx.HTTPError, TimeoutError, OSError) as exc:
            return Response(None, f"{type(exc).__name__}: {exc}".rstrip(": "))

    async def _send(self, url: str, body: bytes, headers: dict[str, str]) -> Response:
        assert self._client is not None
        async with self._client.stream("POST", url, content=body, headers=headers) as answer:
            if answer.is_success:
                return Response(answer.status_code)
            snippet = await _head(answer, ERROR_SNIPPET)
            return Response(
                answer.status_code,
                f"HTTP {answer.status_code}: {snippet}".rstrip(": "),
                retry_after_seconds(answer.headers.get("retry-after")),
            )

    async def _record(
        self,
        delivery_id: int,
        status: str,
        response_status: int | None,
        error: str | None,
        retry_in_s: float | None = None,
    ) -> None:
        def write() -> None:
            with self.engine.begin() as conn:
                alerting.record_attempt(
                    conn, delivery_id, status=status, response_status=response_status,
                    error=error, now=utcnow(), retry_in_s=retry_in_s,
                )

        await self._db(write)

    @staticmethod
    async def _db(work: Callable[..., T], *args: Any) -> T:
        # The store is synchronous SQLAlchemy: keep it off the event loop.
        return await anyio.to_thread.run_sync(work, *args)


async def _head(response: httpx.Response, limit: int) -> str:
    """The start of a response body as one line of text, reading no more than needed."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= limit:
            break
    text = b"".join(chunks)[:limit].decode("utf-8", "replace")
    return " ".join(text.split())
