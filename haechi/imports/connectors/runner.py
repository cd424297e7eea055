"""One run of a connector: fetch what is new since each station's newest stored observation, map it
to datastreams (provisioning stations the city pack lacks), store it through the ingest pipeline
(which skips what is stored already) and remember how far each station got.

A run that fails fetches again from the same place next time: nothing of a failed run is stored, so
a gap is never skipped. What it became (ok, empty, key_refused, quota, failed) is kept with its reason
in ``connector_status`` and, like every import, in ``import_runs``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import httpx
import orjson
from sqlalchemy import Engine

from haechi.core.clock import utcnow
from haechi.ingest.pipeline import Pipeline, Report
from haechi.model.reading import Reading, Rejected

from .. import runs
from ..streams import StreamCache
from . import state
from .client import ApiClient, FeedError
from .feeds import Feed, Obs, Refusal


@dataclass
class RunReport:
    """What a run did, as ``haechi connect run`` prints it and the engine logs it."""

    connector: str
    status: str  # ok · empty · key_refused · quota · failed · disabled
    detail: str | None = None
    requests: int = 0
    retries: int = 0
    records: int = 0
    stored: int = 0
    duplicates: int = 0
    rejected: int = 0
    stations: int = 0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def missing_key(feed: Feed) -> str:
    return f"disabled: {' or '.join(feed.config['key_env'])} is not set"


async def run_feed(feed: Feed, engine: Engine, pipeline: Pipeline, *, key: str | None = None,
                   transport: httpx.AsyncBaseTransport | None = None, now: datetime | None = None,
                   sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep, actor: str = "engine") -> RunReport:
    """Run ``feed`` once; never raises for what the API answers (the report says it)."""
    now = now or utcnow()
    key = key if key is not None else feed.key()
    if not key:
        return RunReport(feed.name, "disabled", missing_key(feed))
    outcome = runs.Outcome(kind=f"connect:{feed.name}", source=feed.source)
    outcome.run_id = await asyncio.to_thread(runs.start, engine, outcome.kind, feed.source, actor)
    last = await asyncio.to_thread(_read, engine, state.last_times, feed.name)
    client = ApiClient(feed.limits, key, transport, sleep)
    try:
        pulled = await feed.pull(client, key, last, now)
    except FeedError as exc:
        return await _failed(engine, feed, outcome, now, client, exc.status, exc.reason)
    except (AttributeError, KeyError, TypeError, ValueError) as exc:  # an answer shaped unlike its guide
        reason = f"unexpected answer: {type(exc).__name__}: {exc}".replace(key, "***")
        return await _failed(engine, feed, outcome, now, client, "failed", reason)
    finally:
        await client.close()
    found, refused = feed.read(pulled.records)
    items = await asyncio.to_thread(_items, engine, feed, found, refused)
    stored = await pipeline.ingest(items, source=outcome.kind)
    report = _report(feed, pulled.records, pulled.notes, found, stored, client)
    _count(outcome, report, len(found))
    newest = _newest(found, now)
    await asyncio.to_thread(_record, engine, report, outcome, now, newest)
    return report


async def _failed(engine: Engine, feed: Feed, outcome: runs.Outcome, now: datetime, client: ApiClient,
                  status: str, reason: str) -> RunReport:
    report = RunReport(feed.name, status, reason, client.requests, client.retries)
    await asyncio.to_thread(_record, engine, report, outcome, now, None)
    return report


def _report(feed: Feed, records: list, notes: list[str], found: list[Obs], stored: Report,
            client: ApiClient) -> RunReport:
    if not client.requests:
        return RunReport(feed.name, "ok", "up to date: nothing newer to ask for yet")
    return RunReport(feed.name, "ok" if records else "empty", "; ".join(dict.fromkeys(notes)) or None,
                     client.requests, client.retries, len(records), stored.stored, stored.duplicates,
                     len(stored.rejected), len({o.ref for o in found}))


def _count(outcome: runs.Outcome, report: RunReport, readings: int) -> None:
    outcome.rows_read, outcome.rows_accepted = report.records, readings
    outcome.rows_rejected, outcome.rows_duplicate = report.rejected, report.duplicates
    outcome.observations_stored = report.stored


def _newest(found: list[Obs], now: datetime) -> dict[str, datetime]:
    """Each station's newest time, never past now: a sensor whose clock runs ahead (its reading is
    stored flagged bad) must not move its window into the future and hide the hours to come."""
    newest: dict[str, datetime] = {}
    for o in found:
        moment = min(o.time, now)
        if o.ref not in newest or moment > newest[o.ref]:
            newest[o.ref] = moment
    return newest


def _read(engine: Engine, query, *args):
    with engine.connect() as conn:
        return query(conn, *args)


def _items(engine: Engine, feed: Feed, found: list[Obs], refused: list[Refusal]) -> list[Reading | Rejected]:
    """Readings on each station's datastreams (made when missing), then the refusals with their reasons."""
    items: list[Reading | Rejected] = []
    if found:
        names = {o.ref: o.name for o in found}
        properties = sorted({o.property for o in found})
        with engine.begin() as conn:
            ids = StreamCache(source=feed.config["source"]).streams(conn, feed.place_kind, names, properties)
        items = [Reading(ids[(o.ref, o.property)], o.time, o.value, unit=o.unit) for o in found]
    for r in refused:
        raw = orjson.dumps({"connector": feed.name, "station": r.ref, "record": r.raw}, default=str).decode()
        items.append(Rejected(len(items), f"{r.ref or 'unknown station'}: {r.reason}", r.field, raw))
    return items


def _record(engine: Engine, report: RunReport, outcome: runs.Outcome, now: datetime,
            newest: dict[str, datetime] | None) -> None:
    reached = report.status in ("ok", "empty")
    with engine.begin() as conn:
        if newest:
            state.advance(conn, report.connector, newest, now)
        state.save_status(conn, report.connector, {
            "run_at": now, "status": report.status, "detail": report.detail, "requests": report.requests,
            "stored": report.stored, "duplicates": report.duplicates, "rejected": report.rejected,
            "ok_at": now if reached else None})
    runs.finish(engine, outcome.run_id, outcome, error=None if reached else f"{report.status}: {report.detail}")

