"""The SensorThings API 1.1 under ``/sta/v1.1`` (OGC 18-088 Part 1: Sensing): thin HTTP handlers.

Reads are public; writes need a token of role admin, operator or device. Every error is RFC 9457
problem+json; a malformed request is a 400 naming the query option or body field at fault.
"""

from __future__ import annotations

import threading
from typing import Annotated, Any

import anyio.to_thread
import orjson
from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse
from sqlalchemy import Engine
from sqlalchemy.exc import DataError
from starlette.exceptions import HTTPException

from haechi.cities.targeting import place_streams
from haechi.core.clock import utcnow
from haechi.ingest.pipeline import Pipeline
from haechi.model.access import Role
from haechi.model.reading import Rejected
from haechi.store import sensing
from haechi.store.access import Principal
from haechi.store.schema import datastreams

from ..auth import require
from ..common import Db
from ..problems import PROBLEM_RESPONSES
from .entities import ENTITY_SETS, LOCATION, OBSERVATION, EntityType, self_link, target_of
from .errors import BadRequest
from .observing import (
    SOURCE,
    Batch,
    check_features,
    data_array_batch,
    draft_from_body,
    finish,
    refusal_field,
)
from .odata import QueryOptions, parse_options
from .reading import Links, RawValue, read
from .resources import Resource, resolve
from .writing import Writer, apply_json_patch

PREFIX = "/sta/v1.1"

#: 18-088 Annex A requirement classes this service meets (announced in the service root, §9.1).
CONFORMANCE = (
    "http://www.opengis.net/spec/iot_sensing/1.1/req/datamodel",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/resource-path/resource-path-to-entities",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/request-data",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/create-update-delete",
    "http://www.opengis.net/spec/iot_sensing/1.1/req/data-array/data-array",
)

router = APIRouter(prefix=PREFIX, tags=["sensorthings"], responses=PROBLEM_RESPONSES)
Writer_ = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DEVICE))]
_pipeline_lock = threading.Lock()


def get_pipeline(request: Request) -> Pipeline:
    """The app's ingest pipeline; one is made over the app's engine if the app has none yet."""
    state = request.app.state
    with _pipeline_lock:
        if getattr(state, "pipeline", None) is None:
            state.pipeline = Pipeline(state.engine)
    return state.pipeline


def links_for(request: Request) -> Links:
    base = str(request.base_url).rstrip("/") + PREFIX
    return Links(base, str(request.url.replace(query="")))


def options_of(request: Request) -> QueryOptions:
    return parse_options(request.query_params.multi_items())


async def json_body(request: Request) -> Any:
    try:
        return orjson.loads(await request.body())
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}", field="body") from None


async def body_text(request: Request) -> str:
    """The body as text, kept raw for the dead-letter store."""
    return (await request.body()).decode("utf-8", errors="replace")


# ── the service root (18-088 §9.1) ────────────────────────────────────────────────────────


@router.get("", summary="Service root: entity sets and conformance")
@router.get("/", include_in_schema=False)
def service_root(request: Request) -> dict[str, Any]:
    base = links_for(request).base
    return {
        "value": [{"name": plural, "url": f"{base}/{plural}"} for plural in ENTITY_SETS],
        "serverSettings": {"conformance": list(CONFORMANCE)},
    }


# ── CreateObservations (18-088 §13.3) ─────────────────────────────────────────────────────


@router.post("/CreateObservations", status_code=201, summary="Create Observations from dataArrays")
async def create_observations(request: Request, db: Db, _: Writer_) -> JSONResponse:
    """One selfLink per row, or ``"error"`` for a row refused (kept in the dead-letter store)."""
    pipeline, raw = get_pipeline(request), await body_text(request)
    try:
        batch = data_array_batch(await json_body(request), pipeline.now())
    except BadRequest as exc:
        await _dead_letter(pipeline, exc, raw)
        raise
    plans = await anyio.to_thread.run_sync(check_features, db, batch)
    report = await pipeline.ingest(batch.readings(), SOURCE)
    refused = {r.index for r in report.rejected}
    ids = await anyio.to_thread.run_sync(finish, db, batch, plans, refused)
    base = links_for(request).base
    return JSONResponse([self_link(base, OBSERVATION, i) if i is not None else "error" for i in ids], 201)


async def _dead_letter(pipeline: Pipeline, exc: BadRequest, raw: str) -> None:
    await pipeline.ingest([Rejected(0, exc.detail, exc.field, raw)], SOURCE)


# ── any resource path (18-088 §9.2) ───────────────────────────────────────────────────────


@router.get("/{path:path}", summary="Read entities, properties or links")
def read_resource(path: str, request: Request, db: Db) -> Response:
    resource, options = resolve(path), options_of(request)
    try:
        with db.connect() as conn:
            answer = read(conn, links_for(request), resource, options)
    except DataError as exc:  # e.g. a division by zero in $filter, caught by PostgreSQL
        raise BadRequest(f"the query could not be evaluated: {exc.orig}", field="$filter") from None
    if isinstance(answer, RawValue):
        return _raw(answer.value)
    return JSONResponse(answer)


def _raw(value: Any) -> Response:
    if value is None:
        return Response(status_code=204)
    if isinstance(value, dict | list):
        return JSONResponse(value)
    return PlainTextResponse(str(value).lower() if isinstance(value, bool) else str(value))


@router.post("/{path:path}", status_code=201, summary="Create an entity (deep insert allowed)")
async def create_entity(path: str, request: Request, db: Db, _: Writer_) -> JSONResponse:
    resource = resolve(path)
    if not resource.is_collection or resource.ref:
        raise HTTPException(405, f"POST creates entities in a collection such as /{resource.entity.plural}",
                            headers={"Allow": "GET, PATCH, PUT, DELETE" if resource.single else "GET"})
    pipeline = get_pipeline(request)
    if resource.entity is OBSERVATION:
        new_id = await _create_observation(request, resource, db, pipeline)
    else:
        body = await json_body(request)
        new_id = await anyio.to_thread.run_sync(_write_new, db, resource, body, pipeline)
    links = links_for(request)
    location = self_link(links.base, resource.entity, new_id)
    created = await anyio.to_thread.run_sync(_read_one, db, links, resource.entity, new_id)
    return JSONResponse(created, status_code=201, headers={"Location": location})


async def _create_observation(request: Request, resource: Resource, db: Engine, pipeline: Pipeline) -> int:
    raw = await body_text(request)
    try:
        body = _with_parent(resource, await json_body(request))
    except BadRequest as exc:
        await _dead_letter(pipeline, exc, raw)
        raise
    batch = Batch()
    batch.add(raw, draft_from_body, body, pipeline.now())
    plans = await anyio.to_thread.run_sync(check_features, db, batch)
    report = await pipeline.ingest(batch.readings(), SOURCE)
    if report.rejected:
        refused = report.rejected[0]
        raise BadRequest(refused.reason, field=refusal_field(refused))
    [new_id] = await anyio.to_thread.run_sync(finish, db, batch, plans, set())
    return new_id


def _with_parent(resource: Resource, body: Any) -> Any:
    """A POST to ``Datastreams(1)/Observations`` links the new entity to Datastream 1."""
    if resource.parent is None:
        if resource.steps:
            raise BadRequest("POST through a navigation property starts from one entity by id, "
                             "e.g. /Datastreams(1)/Observations", field="path")
        return body
    _, parent_id, nav = resource.parent
    inverse = target_of(nav).nav(nav.inverse)
    link = {"@iot.id": parent_id}
    value = [link] if inverse.many else link
    if not isinstance(body, dict):
        return body
    if body.get(inverse.name, value) != value:
        raise BadRequest(f"{inverse.name} in the body differs from the path's", field=f"body.{inverse.name}")
    return {**body, inverse.name: value}


def _write_new(db: Engine, resource: Resource, body: Any, pipeline: Pipeline) -> int:
    body = _with_parent(resource, body)
    with db.begin() as conn:
        new_id = Writer(conn, utcnow()).create(resource.entity, body)
        streams = [new_id] if resource.entity.table is datastreams else sensing.streams_of(
            conn, resource.entity.table, new_id)
        place_streams(conn, streams)
        if resource.entity is LOCATION:
            _forget(pipeline, streams)
    return new_id


def _read_one(db: Engine, links: Links, entity: EntityType, entity_id: int) -> dict[str, Any]:
    with db.connect() as conn:
        return read(conn, links, resolve(f"{entity.plural}({entity_id})"), QueryOptions())


def _forget(pipeline: Pipeline, stream_ids: list[int]) -> None:
    """Drop cached ingest profiles of changed datastreams; the pipeline reloads them on next use."""
    pipeline.forget(stream_ids)


# ── update and delete (18-088 §10.3, §10.4) ───────────────────────────────────────────────


def _one_entity(path: str) -> Resource:
    resource = resolve(path)
    if resource.id is None or resource.prop is not None or resource.ref:
        raise HTTPException(405, "PATCH, PUT and DELETE address one entity by id, such as /Things(1)",
                            headers={"Allow": "GET, POST" if resource.is_collection else "GET"})
    return resource


@router.patch("/{path:path}", summary="Update an entity (JSON merge or JSON Patch)")
async def patch_entity(path: str, request: Request, db: Db, _: Writer_) -> JSONResponse:
    return await _update(path, request, db, replace=False)


@router.put("/{path:path}", summary="Replace an entity's properties")
async def put_entity(path: str, request: Request, db: Db, _: Writer_) -> JSONResponse:
    return await _update(path, request, db, replace=True)


async def _update(path: str, request: Request, db: Engine, *, replace: bool) -> JSONResponse:
    resource = _one_entity(path)
    body = await json_body(request)
    links, pipeline = links_for(request), get_pipeline(request)
    is_patch = request.headers.get("content-type", "").split(";")[0].strip() == "application/json-patch+json"

    def write() -> dict[str, Any]:
        changes = body
        if is_patch:
            current = _read_one(db, links, resource.entity, resource.id)
            changes = _changed(current, apply_json_patch(current, body))
        with db.begin() as conn:
            if not sensing.row_exists(conn, resource.entity.table, resource.id):
                raise BadRequest(f"there is no {resource.entity.name} with id {resource.id}", field="path")
            Writer(conn, utcnow()).update(resource.entity, resource.id, changes, replace=replace)
            streams = sensing.streams_of(conn, resource.entity.table, resource.id)
            place_streams(conn, streams)  # moved, or linked to a Location: its district follows
            _forget(pipeline, streams)
        return _read_one(db, links, resource.entity, resource.id)

    return JSONResponse(await anyio.to_thread.run_sync(write))


def _changed(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """The members a JSON Patch changed, as a merge-style update (removed ones become null)."""
    keys = (before.keys() | after.keys()) - {"@iot.selfLink", "@iot.id"}
    return {k: after.get(k) for k in keys if before.get(k, ...) != after.get(k, ...) and "@iot." not in k}


@router.delete("/{path:path}", summary="Delete an entity and what depends on it")
def delete_entity(path: str, request: Request, db: Db, _: Writer_) -> Response:
    resource = _one_entity(path)
    pipeline = get_pipeline(request)
    with db.begin() as conn:
        streams = sensing.streams_of(conn, resource.entity.table, resource.id)
        if not sensing.delete_row(conn, resource.entity.table, resource.id):
            raise HTTPException(404, f"there is no {resource.entity.name} with id {resource.id}")
    _forget(pipeline, streams)
    return Response(status_code=200)
