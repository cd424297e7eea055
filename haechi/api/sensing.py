"""Sensing over HTTP: bulk observation upload, the live state, and the live event stream (SSE)."""

from __future__ import annotations

import asyncio
import json
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, Field

from haechi.core.errors import InvalidInput
from haechi.core.events import Event, Feed, Lagged
from haechi.ingest import parse
from haechi.ingest.pipeline import Pipeline, Report
from haechi.model.access import Role
from haechi.model.events import OBSERVATION_STORED, PRIVATE, PUBLIC
from haechi.store.access import Principal, authenticate

from .auth import identify, require
from .common import API_PREFIX, AreaCode, bbox_query
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["sensing"], responses=PROBLEM_RESPONSES)

#: Readings per stored batch: large enough to amortise a transaction, small enough to stream.
BATCH = 20_000
Writer = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DEVICE))]


class IngestReport(BaseModel):
    received: int = Field(description="Observations read from the body")
    stored: int = Field(description="New observations stored")
    duplicates: int = Field(description="Already stored (same datastream and phenomenon time): a resend is a no-op")
    quality: dict[str, int] = Field(description="Stored and duplicate observations by QC flag")
    rejected: int = Field(description="Observations refused and kept in the dead-letter store")
    rejections: list[dict[str, Any]] = Field(description="The first 1,000 refusals: index, field, reason")


@router.post(
    "/observations", response_model=IngestReport, summary="Upload observations · 관측값 업로드",
    openapi_extra={"requestBody": {"content": {
        "application/json": {"schema": {"type": "array", "items": {"type": "object"}}},
        "application/x-ndjson": {"schema": {"type": "string"}},
        "text/csv": {"schema": {"type": "string"}}}}},
)
async def upload_observations(request: Request, writer: Writer) -> JSONResponse:
    """Store observations sent as a JSON array (or one object), NDJSON, or CSV, read as a stream.

    Each observation: `datastream_id`, `phenomenon_time` (ISO 8601 with offset), `result`,
    optional `unit` (converted to the datastream's). Readings are QC-flagged and stored once each;
    malformed ones are refused with their index and reason and kept in the dead-letter store.
    The response comes after everything accepted is committed.
    """
    sink = request.app.state.sink
    kind = request.headers.get("content-type", "application/json").split(";")[0].strip().lower()
    source = f"http:{writer.name}"
    report, single = Report(), False
    batch: list[parse.Reading | parse.Rejected] = []
    storing: asyncio.Task | None = None  # the previous batch, stored while this one is parsed
    index = 0
    try:
        async for items in _item_lists(kind, request.stream()):
            if items and items[0] is _SINGLE:
                single, items = True, items[1:]
            for item in items:
                batch.append(_decoded(item, index))
                index += 1
            if len(batch) >= BATCH:
                if storing is not None:
                    report.add(await storing)
                storing = asyncio.ensure_future(sink.ingest(batch, source))
                batch = []
    except InvalidInput as exc:
        if storing is not None:
            report.add(await storing)
        if report.stored:
            exc.detail += f"; the {report.stored} observations before it were stored (resending them is harmless)"
        raise
    if storing is not None:
        report.add(await storing)
    if batch or index == 0:
        report.add(await sink.ingest(batch, source))
    if single and report.rejected:
        rejected = report.rejected[0]
        raise InvalidInput(rejected.reason, field=f"body.{rejected.field}" if rejected.field else "body")
    if report.received == 0:
        raise InvalidInput("the body holds no observations", field="body")
    if sink.queued:  # scale-out: durably queued, stored by the workers; refusals come later as dead letters
        return JSONResponse(report.as_dict(), status_code=202)
    return JSONResponse(report.as_dict(), status_code=200 if report.stored or report.duplicates else 422)


_SINGLE = object()  # marks a body that was one JSON object, not an array


def _decoded(item: Any, index: int) -> parse.Reading | parse.Rejected:
    if isinstance(item, parse.Rejected):
        item.index = index
        return item
    try:
        return parse.reading(item)
    except InvalidInput as exc:
        return parse.Rejected(index, exc.detail, exc.field, parse._raw(item))


async def _item_lists(kind: str, chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Any]]:
    """Decoded payload items, a list per arriving chunk, whatever the body's format."""
    if kind == "application/json":
        async for items in _json_items(chunks):
            yield items
    elif kind in ("application/x-ndjson", "application/jsonl"):
        async for lines in parse.lines(chunks):
            yield [_or_rejected(parse.ndjson_item, line) for line in lines if line.strip()]
    elif kind == "text/csv":
        header = None
        async for lines in parse.lines(chunks):
            items = []
            for line in lines:
                line = line.rstrip(b"\r")
                if not line.strip():
                    continue
                if header is None:
                    header = parse.csv_header(line)
                else:
                    items.append(_or_rejected(parse.csv_item, header, line))
            yield items
    else:
        raise InvalidInput(
            f"unsupported content type {kind!r}: send application/json, application/x-ndjson or text/csv",
            field="header.content-type")


async def _json_items(chunks: AsyncIterator[bytes]) -> AsyncIterator[list[Any]]:
    """Items of an array body as they arrive; a single object is read whole (it is small)."""
    first = b""
    async for chunk in chunks:
        first += chunk
        if first.strip():
            break
    head = first.lstrip()[:1]
    if head == b"{":
        rest = first + b"".join([c async for c in chunks])
        try:
            obj = json.loads(rest)
        except ValueError as exc:
            raise InvalidInput(f"the body is not valid JSON: {exc}", field="body") from None
        yield [_SINGLE, obj]
        return
    if head != b"[":
        raise InvalidInput("the body must be a JSON array of observations, or one observation object", field="body")

    async def replay() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    async for items in parse.json_array_items(replay()):
        yield items


def _or_rejected(decode, *args) -> Any:
    """``decode(*args)``, or a Rejected keeping the raw line (its last argument)."""
    try:
        return decode(*args)
    except InvalidInput as exc:
        return parse.Rejected(-1, exc.detail, exc.field, args[-1].decode("utf-8", errors="replace"))


# ── live state ───────────────────────────────────────────────────────────────────────────


class StreamNow(BaseModel):
    datastream_id: int
    name: str
    property: str
    unit: str
    phenomenon_time: str
    result: float
    quality: str = Field(description="good · suspect · bad")
    silent: bool = Field(description="No reading for three expected intervals")
    area_code: str | None
    lon: float | None
    lat: float | None


@router.get("/state", response_model=list[StreamNow], summary="Live state · 실시간 현황")
def live_state(
    request: Request,
    property: Annotated[str | None, Query(description="Observed property code, e.g. water_level")] = None,
    area: Annotated[AreaCode | None, Query(description="District or dong code prefix")] = None,
    bbox: Annotated[str | None, Query(description="w,s,e,n in WGS84 degrees")] = None,
) -> list[dict[str, Any]]:
    """The newest reading of every datastream, from memory (no database query)."""
    pipeline: Pipeline = request.app.state.pipeline
    box = bbox_query(bbox) if bbox else None
    rows = []
    for stream_id, now in sorted(pipeline.state.streams.items()):
        profile = pipeline.profile(stream_id)
        if profile is None or (property and profile.property != property):
            continue
        if area and not (profile.area_code or "").startswith(area):
            continue
        if box and not (profile.lon is not None
                        and box[0] <= profile.lon <= box[2] and box[1] <= profile.lat <= box[3]):
            continue
        rows.append({
            "datastream_id": stream_id, "name": profile.name, "property": profile.property, "unit": profile.unit,
            "phenomenon_time": now.phenomenon_time.isoformat(), "result": now.result, "quality": now.quality,
            "silent": stream_id in pipeline.state.silent, "area_code": profile.area_code,
            "lon": profile.lon, "lat": profile.lat})
    return rows


# ── live stream ──────────────────────────────────────────────────────────────────────────

#: Bus events one client may have waiting. A phone on a weak link that falls further behind gets
#: one `lagged` event and the stream ends; its EventSource reconnects with Last-Event-ID and
#: resumes, while the publisher and every other client went on without waiting for it.
CLIENT_QUEUE = 1_000
HEARTBEAT_S = 15.0
#: The newest events' SSE text, kept to be written to every client that may see them: encoded once
#: per event, not once per client (10,000 clients on one process). Clients read the same event
#: within moments of each other; one further behind than this encodes it again.
SHARED_TEXTS = 64


@router.get("/stream", summary="Live events (SSE) · 실시간 이벤트 스트림",
            response_class=StreamingResponse)
async def live_stream(
    request: Request,
    types: Annotated[str, Query(description="Comma-separated event patterns, e.g. observation.>,sensor.>")] = ">",
    token: Annotated[str | None, Query(
        description="Staff token, for browsers' EventSource (it cannot send headers); "
                    "the Authorization header works too")] = None,
    last_event_id: Annotated[str | None, Query(
        description="Resume after this event id, for clients that cannot send the Last-Event-ID header")] = None,
) -> StreamingResponse:
    """Server-Sent Events: one `observation` event per stored reading, plus sensor and other events.

    Anyone sees the public picture (observations, sensors, warnings, alerts); incidents, units,
    drones, CCTV and care events go only to staff tokens, since they can name people and places.
    Every event has an `id`; reconnecting with `Last-Event-ID` (which browsers send by themselves)
    resumes after it, on any replica. When that is no longer possible the stream starts with a
    `reset` event: reload what you show. A client that falls behind gets `lagged` and the stream
    ends: reconnect with Last-Event-ID.
    """
    patterns = [p.strip() for p in types.split(",") if p.strip()]
    staff = _staff(request, token)
    resume = request.headers.get("last-event-id") or last_event_id or None
    after, item = _position(resume)
    feed: Feed = await request.app.state.bus.follow(patterns, after=after, including=item is not None,
                                                    limit=CLIENT_QUEUE)
    events = _events(feed, staff, resume, item)
    weakref.finalize(events, feed.close)  # also when the client left before the stream began
    return StreamingResponse(events, media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


async def _events(feed: Feed, staff: Principal | None, resume: str | None,
                  item: int | None) -> AsyncIterator[str | bytes]:
    """The SSE text of ``feed``'s events this client may see, until it falls behind or leaves.

    ``item``: of the batch ``resume`` names, the last reading the client already has.
    """
    try:
        fresh = resume is None or feed.reset
        last = feed.position if fresh else resume
        # A comment, and an id with no data: it sets the client's Last-Event-ID without an event, so
        # one that reconnects before anything came resumes from here, not from its reconnection.
        yield ": connected\n" + (f"id: {last}\n\n" if fresh and last is not None else "\n")
        if feed.reset:
            yield _sse("reset", {"reason": "the events after your Last-Event-ID are no longer kept: reload"})
        batch = _position(resume)[0] if item is not None and not feed.reset else None
        while True:
            try:
                event = await feed.next(HEARTBEAT_S)
            except Lagged as lag:
                yield _sse("lagged", {"dropped": lag.dropped, "resume": last})
                return
            if event is None:
                yield ": heartbeat\n\n"
                continue
            if event.type in PRIVATE or (event.type not in PUBLIC and not _may_see(staff, event)):
                continue
            text = _text(event, item + 1 if batch is not None and event.id == batch else 0)
            batch = None  # only the first event can be the batch the client had part of
            if text:
                yield text
                last = event.id or last  # a batch's last reading carries the batch's id
    finally:
        feed.close()


STAFF = frozenset({Role.ADMIN, Role.OPERATOR, Role.DISTRICT_OFFICIAL})


def _staff(request: Request, token: str | None) -> Principal | None:
    """The caller, when staff (header or ``token`` parameter); None for anyone else."""
    principal = identify(request.app.state.engine, request.scope).principal
    if principal is None and token:
        with request.app.state.engine.connect() as conn:
            principal = authenticate(conn, token)
    return principal if principal is not None and principal.role in STAFF else None


def _may_see(staff: Principal | None, event: Event) -> bool:
    """Staff see staff events; a district official only those of their own district, as over REST."""
    if staff is None:
        return False
    if staff.role != Role.DISTRICT_OFFICIAL:
        return True
    area = str(event.data.get("area_code") or "")
    return bool(staff.area_code) and area.startswith(staff.area_code)


def _position(resume: str | None) -> tuple[str | None, int | None]:
    """A Last-Event-ID as (the bus event's id, the item of its batch already sent, if only part was)."""
    if resume is None:
        return None, None
    event_id, _, item = resume.rpartition(":")
    if event_id and item.isdigit():
        return event_id, int(item)
    return resume, None


def _expand(event: Event, seen: int = 0):
    """``(id, name, data)`` of the SSE events for a bus event, skipping the first ``seen`` items.

    A stored batch becomes one `observation` event per reading, as the dashboard wants them. Its
    last reading carries the batch's id; the others ``<id>:<i>`` (i from 0), so a client cut off
    inside a batch resumes at its next reading. Everything else is one event with the bus's id.
    """
    if event.type == OBSERVATION_STORED:
        observations = event.data["observations"]
        last = len(observations) - 1
        for i in range(seen, len(observations)):
            yield (event.id if i == last or event.id is None else f"{event.id}:{i}"), "observation", observations[i]
    else:
        yield event.id, event.type, event.data | {"at": event.at.isoformat()}


_shared: OrderedDict[int, tuple[Event, bytes]] = OrderedDict()  # by the event object: see SHARED_TEXTS


def _text(event: Event, seen: int) -> bytes:
    """The SSE text of ``event`` (less its first ``seen`` readings), shared by the clients it goes to.

    Keyed by the object (held, so its identity is not reused): the in-process bus hands every
    client the same one; over NATS each client's consumer decodes its own, and this saves nothing.
    """
    if seen:
        return _render(event, seen)
    kept = _shared.get(id(event))
    if kept is None:
        kept = _shared[id(event)] = (event, _render(event, 0))
        if len(_shared) > SHARED_TEXTS:
            _shared.popitem(last=False)
    return kept[1]


def _render(event: Event, seen: int) -> bytes:
    return "".join(_sse(name, data, sse_id) for sse_id, name, data in _expand(event, seen)).encode()


def _sse(name: str, data: dict[str, Any], event_id: str | None = None) -> str:
    text = f"event: {name}\ndata: {json.dumps(data, ensure_ascii=False, separators=(',', ':'))}\n\n"
    return text if event_id is None else f"id: {event_id}\n{text}"
