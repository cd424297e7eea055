"""CCTV analytics events (지능형 CCTV): camera systems post what their video analytics detected.

`POST /api/v1/cctv/events` takes one JSON event. It is refused — and kept in the dead-letter
store with the reason — when the camera is not in the registry, the coordinates are invalid or
beyond the camera's reach, the type or density is wrong, the time is stale or in the future,
or the event id was already received (a replay).
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import JSONResponse
from pydantic_core import to_jsonable_python
from sqlalchemy.exc import IntegrityError

from haechi.core.clock import utcnow
from haechi.core.errors import Conflict, HaechiError, InvalidInput
from haechi.model.access import Role
from haechi.model.events import CCTV_EVENT
from haechi.response import cctv, repository
from haechi.response import incidents as service
from haechi.store import deadletters
from haechi.store.access import Principal

from .auth import require
from .common import API_PREFIX, refusal_reason
from .incidents import Operator, publish, publish_incident
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["cctv"], responses=PROBLEM_RESPONSES)
CameraSystem = Annotated[Principal, Depends(require(Role.DEVICE, Role.OPERATOR))]
SOURCE = "http:cctv-events"

EXAMPLE = {"event_id": "vms-7-20261127-000123", "camera_ref": "GN-0412", "type": "smoke_fire",
           "observed_at": "2026-11-27T09:14:05+09:00", "lon": 127.0365, "lat": 37.5001, "confidence": 0.91}


@router.post(
    "/cctv/events", status_code=201, summary="Post a CCTV analytics event · 지능형 CCTV 이벤트",
    openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"type": "object", "required": ["event_id", "type", "observed_at"], "properties": {
            "event_id": {"type": "string",
                         "description": "The camera system's own id: a resend is refused as a replay"},
            "camera_id": {"type": "integer", "description": "Registry place id of the camera"},
            "camera_ref": {"type": "string", "description": "Or the camera's registry ref"},
            "type": {"type": "string", "enum": list(cctv.EVENT_TYPES)},
            "observed_at": {"type": "string", "format": "date-time",
                            "description": "With offset; not stale, not future"},
            "lon": {"type": "number"}, "lat": {"type": "number"},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1},
            "density": {"type": "number", "description": "persons per m², crowd_density only"},
            "detail": {"type": "object"}}},
        "example": EXAMPLE}}}},
)
async def post_event(request: Request, who: CameraSystem) -> JSONResponse:
    """An accepted smoke/fire event opens a fire incident owned by the CCTV center (or attaches to an
    open one within the attach radius); a dangerous crowd density opens a crowd-crush-risk incident."""
    raw = await request.body()
    engine = request.app.state.engine

    def work():
        try:
            body = json.loads(raw)
        except ValueError as exc:
            return None, InvalidInput(f"the body is not valid JSON: {exc}", field="body")
        try:
            with engine.begin() as conn:
                event, incident, opened = cctv.accept(conn, body, now=utcnow(), actor=who.name)
                full = service.with_history(conn, incident["id"]) if incident else None
                return (event, full, opened), None
        except HaechiError as exc:
            return None, exc
        except IntegrityError:  # the same event id sent twice at once: the other copy won
            return None, Conflict("this event id was already received (a replay)", field="body.event_id")

    done, refusal = await anyio.to_thread.run_sync(work)
    if refusal is not None:
        # Kept in its own transaction: the refused event must survive the error answer.
        def keep():
            with engine.begin() as conn:
                deadletters.keep(conn, f"{SOURCE}:{who.name}", refusal_reason(refusal), raw)
        await anyio.to_thread.run_sync(keep)
        raise refusal
    event, incident, opened = done
    await publish(request, CCTV_EVENT, {k: event[k] for k in ("id", "event_id", "camera_place_id", "event_type",
                                                          "observed_at", "lon", "lat", "density", "incident_id")})
    if incident is not None:
        await publish_incident(request, incident, "opened" if opened else "cctv_event")
    return JSONResponse({"event": _jsonable(event), "incident_id": incident["id"] if incident else None,
                         "incident_opened": opened}, status_code=201)


def _jsonable(row: dict[str, Any]) -> dict[str, Any]:
    return to_jsonable_python(row)


@router.get("/cctv/events", summary="Recent CCTV analytics events · CCTV 이벤트 목록")
def list_events(who: Operator, request: Request,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100) -> list[dict[str, Any]]:
    with request.app.state.engine.begin() as conn:
        return repository.find_cctv_events(conn, limit=limit)
