"""Incidents shared by the CCTV center, the situation room and the 119 center; 119 dispatch.

Operators open incidents (or triage them from citizens' reports and warnings), move them along
the lifecycle reported → verified → responding → contained → closed, hand them between centers
and dispatch 119 units. Every change is in the incident's history and published on the bus as
``incident.changed`` (``unit.changed`` for units), so the live stream (`/api/v1/stream`) carries it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field, model_validator
from pydantic_core import to_jsonable_python

from haechi.core.clock import utcnow
from haechi.core.errors import Forbidden, InvalidInput
from haechi.model.access import Center, Role
from haechi.model.events import DRONE_CHANGED, UNIT_CHANGED, event
from haechi.response import dispatch as dispatching
from haechi.response import incidents as service
from haechi.response import repository
from haechi.response.config import incident_kinds
from haechi.response.surroundings import around
from haechi.response.travel import travel_times
from haechi.store import incidents as incident_records
from haechi.store.access import Principal

from .auth import ensure_in_own_area, readable_area, require
from .common import (
    API_PREFIX,
    AreaCode,
    Id,
    Lat,
    Limit,
    Lon,
    Moment,
    Offset,
    QueryParams,
    Record,
    RequestBody,
    UtcMoment,
)
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["incidents"], responses=PROBLEM_RESPONSES)

Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]
IncidentId = Id
Kind = Annotated[str, Field(pattern=r"^[a-z][a-z_]{0,31}$", examples=["fire"],
                            description="Incident kind: " + ", ".join(incident_kinds()))]
CenterCode = Annotated[Center, Field(description="cctv · situation_room · 119")]


class IncidentIn(RequestBody):
    """A new incident: by hand (kind, lon, lat, title), or triaged from a citizen's report or a warning."""

    kind: Kind | None = None
    lon: Lon | None = None
    lat: Lat | None = None
    title: str | None = Field(None, min_length=1, max_length=300)
    severity: str = Field("high", pattern=r"^(low|medium|high|critical)$")
    center: CenterCode | None = Field(None, description="Owning center; defaults to the caller's, else the kind's")
    detail: dict[str, Any] | None = None
    report_id: int | None = Field(None, ge=1, description="Open from this citizen report (marks it triaged)")
    warning_id: int | None = Field(None, ge=1, description="Open from this warning")

    @model_validator(mode="after")
    def _one_source(self) -> IncidentIn:
        if self.report_id is not None and self.warning_id is not None:
            raise ValueError("give report_id or warning_id, not both")
        if (self.lon is None) != (self.lat is None):
            raise ValueError("give lon and lat together, or neither")
        return self


class StatusIn(RequestBody):
    status: str = Field(pattern=r"^[a-z_]{1,16}$", examples=["verified"])
    note: str | None = Field(None, max_length=2_000)


class HandoffIn(RequestBody):
    center: CenterCode
    note: str | None = Field(None, max_length=2_000)


class NoteIn(RequestBody):
    note: str = Field(min_length=1, max_length=2_000)


class DispatchIn(RequestBody):
    unit_ids: list[int] = Field(min_length=1, max_length=20, description="Fire units to send")


class ArrivalIn(RequestBody):
    arrived_at: Moment | None = Field(None, description="When the unit reached the scene; now if left out")


class IncidentFilter(QueryParams):
    center: CenterCode | None = None
    status: str | None = Field(None, pattern=r"^[a-z]{1,16}$", description="open (not closed) or one status")
    kind: str | None = Field(None, max_length=32)
    area: AreaCode | None = None
    limit: Limit = 100
    offset: Offset = 0


class ResponseTimeFilter(QueryParams):
    since: Moment | None = None
    kind: str | None = Field(None, max_length=32)


class HistoryEntry(Record):
    id: int
    at: UtcMoment
    actor: str
    action: str = Field(description="opened · status · handoff · note · dispatch · arrival · unit · drone · cctv_event")
    from_value: str | None
    to_value: str | None
    note: str | None
    detail: dict[str, Any] | None


class Dispatch(Record):
    id: int
    incident_id: int
    unit_id: int
    call_sign: str | None = None
    unit_type: str | None = None
    dispatched_at: UtcMoment
    estimate_s: float | None = Field(description="Travel time expected at dispatch")
    estimate_method: str | None = Field(description="road_graph · straight_line")
    arrived_at: UtcMoment | None
    response_s: float | None = Field(description="Arrival − dispatch, seconds")
    golden_time_s: float | None
    met_golden_time: bool | None
    cleared_at: UtcMoment | None
    dispatched_by: str


class Incident(Record):
    id: int
    kind: str
    title: str
    severity: str
    status: str = Field(description="reported · verified · responding · contained · closed")
    center: str = Field(description="The owning center: cctv · situation_room · 119")
    lon: float | None
    lat: float | None
    area_code: str | None
    source: str = Field(description="operator · report · warning · cctv · care")
    source_ref: str | None
    detail: dict[str, Any] | None
    opened_at: UtcMoment
    updated_at: UtcMoment
    closed_at: UtcMoment | None
    created_by: str


class IncidentDetail(Incident):
    kind_name_ko: str | None
    kind_name_en: str | None
    allowed_next: list[str] = Field(description="The statuses this incident may move to next")
    history: list[HistoryEntry]
    dispatches: list[Dispatch]


async def in_transaction(request: Request, work: Callable[[Any], Any]) -> Any:
    """Run ``work(conn)`` in one transaction on a worker thread (the event loop stays free)."""
    engine = request.app.state.engine

    def run():
        with engine.begin() as conn:
            return work(conn)

    return await anyio.to_thread.run_sync(run)


async def publish(request: Request, name: str, data: dict[str, Any]) -> None:
    """Publish the declared event ``name`` with ``data`` made JSON-ready (times as ISO 8601)."""
    await request.app.state.bus.publish(event(name, to_jsonable_python(data)))


async def publish_incident(request: Request, incident: dict[str, Any], action: str) -> None:
    await request.app.state.bus.publish(service.changed_event(incident, action))


def road_times(request: Request):
    settings = request.app.state.settings
    return lambda origins, destination: travel_times(settings, origins, destination)


def ensure_owner(who: Principal, incident: dict[str, Any]) -> None:
    """An operator of one center changes only the incidents it owns (admins and center-less operators any)."""
    if who.role == Role.ADMIN or not who.center or who.center == incident["center"]:
        return
    raise Forbidden(f"incident {incident['id']} is owned by center {incident['center']}; "
                    f"operator {who.name!r} works in {who.center}: ask the owner to hand it off")


@router.post("/incidents", status_code=201, response_model=IncidentDetail, summary="Open an incident · 사건 등록")
async def open_incident(body: IncidentIn, who: Operator, request: Request, response: Response) -> dict[str, Any]:
    """Open by hand, or from `report_id` (a citizen's report, then marked triaged) or `warning_id`."""
    center = body.center or who.center

    def work(conn):
        if body.report_id is not None:
            if body.kind is None:
                raise InvalidInput("say what kind of incident the report is", field="body.kind")
            incident = service.from_report(conn, body.report_id, actor=who, kind=body.kind, severity=body.severity,
                                           center=center or Center.SITUATION_ROOM.value, title=body.title,
                                           lon=body.lon, lat=body.lat)
        elif body.warning_id is not None:
            incident = service.from_warning(conn, body.warning_id, actor=who, kind=body.kind, title=body.title,
                                            center=center or Center.SITUATION_ROOM.value, lon=body.lon, lat=body.lat)
        else:
            missing = [f for f in ("kind", "lon", "title") if getattr(body, f) is None]
            if missing:
                raise InvalidInput(f"{missing[0]} is required (or give report_id or warning_id)",
                                   field=f"body.{missing[0]}")
            kind = incident_kinds().get(body.kind)
            own = center or (kind.default_center if kind else Center.SITUATION_ROOM.value)
            incident = _open(conn, body, own, who)
        return service.with_history(conn, incident["id"])

    incident = await in_transaction(request, work)
    await publish_incident(request, incident, "opened")
    response.headers["Location"] = f"{API_PREFIX}/incidents/{incident['id']}"
    return incident


def _open(conn, body: IncidentIn, center: str, who: Principal) -> dict[str, Any]:
    try:
        return service.open_incident(conn, kind=body.kind, lon=body.lon, lat=body.lat, title=body.title,
                                     severity=body.severity, center=center, detail=body.detail, actor=who)
    except InvalidInput as exc:
        exc.field = f"body.{exc.field}" if exc.field and not exc.field.startswith("body.") else exc.field
        raise


@router.get("/incidents", response_model=list[Incident], summary="Incidents, a center's queue · 사건 목록")
def list_incidents(who: Staff, request: Request, q: Annotated[IncidentFilter, Query()]) -> list[dict[str, Any]]:
    """Newest first. `center=119&status=open` is the 119 center's queue. District officials see their own area."""
    area = readable_area(who, q.area, "query.area")
    with request.app.state.engine.begin() as conn:
        return service.queue(conn, center=q.center, status=q.status, kind=q.kind, area_code=area,
                             limit=q.limit, offset=q.offset)


@router.get("/incidents.geojson", summary="Open incidents as a map layer · 사건 지도")
def incidents_geojson(who: Staff, request: Request) -> dict[str, Any]:
    """A GeoJSON FeatureCollection of every incident not closed (the shared picture of the three centers)."""
    area = readable_area(who, None, "query.area")
    with request.app.state.engine.begin() as conn:
        found = service.queue(conn, center=None, status="open", area_code=area, limit=1000)
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": i["id"], "geometry": {"type": "Point", "coordinates": [i["lon"], i["lat"]]},
         "properties": {k: i[k] for k in ("id", "kind", "title", "severity", "status", "center", "opened_at")}}
        for i in found if i["lon"] is not None]}


@router.get("/incidents/{incident_id}", response_model=IncidentDetail,
            summary="One incident with its history · 사건 상세")
def get_incident(who: Staff, request: Request, incident_id: IncidentId) -> dict[str, Any]:
    with request.app.state.engine.begin() as conn:
        incident = service.with_history(conn, incident_id)
    ensure_in_own_area(who, incident["area_code"], "path.incident_id")
    return incident


@router.post("/incidents/{incident_id}/status", response_model=IncidentDetail,
             summary="Move an incident along its lifecycle · 상태 변경")
async def change_status(body: StatusIn, who: Operator, request: Request, incident_id: IncidentId) -> dict[str, Any]:
    """An illegal move answers 409, naming the statuses allowed next."""
    def work(conn):
        ensure_owner(who, incident_records.get_incident(conn, incident_id))
        moved = service.change_status(conn, incident_id, body.status, actor=who, note=body.note)
        return service.with_history(conn, incident_id), moved["released"]

    incident, released = await in_transaction(request, work)
    await publish_incident(request, incident, "status")
    for unit in released["units"]:  # closing gives its units and drones back
        await publish(request, UNIT_CHANGED, unit)
    for drone in released["drones"]:
        await publish(request, DRONE_CHANGED, drone)
    return incident


@router.post("/incidents/{incident_id}/handoff", response_model=IncidentDetail,
             summary="Hand an incident to another center · 이관")
async def hand_off(body: HandoffIn, who: Operator, request: Request, incident_id: IncidentId) -> dict[str, Any]:
    def work(conn):
        ensure_owner(who, incident_records.get_incident(conn, incident_id))
        service.hand_off(conn, incident_id, body.center, actor=who, note=body.note)
        return service.with_history(conn, incident_id)

    incident = await in_transaction(request, work)
    await publish_incident(request, incident, "handoff")
    return incident


@router.post("/incidents/{incident_id}/notes", response_model=IncidentDetail,
             summary="Add a note to the history · 메모")
async def add_note(body: NoteIn, who: Operator, request: Request, incident_id: IncidentId) -> dict[str, Any]:
    def work(conn):
        service.add_note(conn, incident_id, body.note, actor=who)
        return service.with_history(conn, incident_id)

    incident = await in_transaction(request, work)
    await publish_incident(request, incident, "note")
    return incident


@router.get("/incidents/{incident_id}/history", response_model=list[HistoryEntry],
            summary="An incident's audit trail · 처리 이력")
def history(who: Staff, request: Request, incident_id: IncidentId) -> list[dict[str, Any]]:
    with request.app.state.engine.begin() as conn:
        incident = service.with_history(conn, incident_id)
    ensure_in_own_area(who, incident["area_code"], "path.incident_id")
    return incident["history"]


@router.get("/incidents/{incident_id}/surroundings", summary="Around an incident · 사건 주변")
def surroundings(who: Staff, request: Request, incident_id: IncidentId) -> dict[str, Any]:
    """Cameras whose view holds the incident, shelters, hospitals, vulnerable places, people nearby."""
    with request.app.state.engine.begin() as conn:
        incident = incident_records.get_incident(conn, incident_id)
        ensure_in_own_area(who, incident["area_code"], "path.incident_id")
        return around(conn, incident)


@router.get("/incidents/{incident_id}/recommendations", summary="Units to send, fastest first · 출동 추천")
def recommendations(who: Operator, request: Request, incident_id: IncidentId,
                    limit: Annotated[int, Query(ge=1, le=100)] = 10) -> dict[str, Any]:
    """Available units only, ranked by travel time; `method` says whether it is by road graph or estimated."""
    with request.app.state.engine.begin() as conn:
        return dispatching.recommend(conn, incident_id, road_times(request), limit=limit)


@router.post("/incidents/{incident_id}/dispatch", status_code=201, summary="Dispatch units · 출동 지령")
async def dispatch(body: DispatchIn, who: Operator, request: Request, incident_id: IncidentId) -> dict[str, Any]:
    times = road_times(request)

    def work(conn):
        made = dispatching.dispatch(conn, incident_id, body.unit_ids, times, actor=who)
        return made, service.with_history(conn, incident_id), [dispatching.unit(conn, d["unit_id"]) for d in made]

    made, incident, units = await in_transaction(request, work)
    await publish_incident(request, incident, "dispatch")
    for unit in units:
        await publish(request, UNIT_CHANGED, unit)
    return {"dispatches": made, "incident": incident}


@router.post("/incidents/{incident_id}/dispatches/{dispatch_id}/arrival", response_model=Dispatch,
             summary="Record an arrival · 현장 도착")
async def arrival(body: ArrivalIn, who: Operator, request: Request, incident_id: IncidentId,
                  dispatch_id: Id) -> dict[str, Any]:
    """The unit is on scene: its response time and whether it met the golden time are stored."""
    def work(conn):
        done = dispatching.arrive(conn, incident_id, dispatch_id, actor=who, at=body.arrived_at or utcnow())
        return done, service.with_history(conn, incident_id), dispatching.unit(conn, done["unit_id"])

    done, incident, unit = await in_transaction(request, work)
    await publish_incident(request, incident, "arrival")
    await publish(request, UNIT_CHANGED, unit)
    return done


@router.get("/response-times", summary="Response times and the golden time · 출동 소요시간")
def response_times(who: Staff, request: Request, q: Annotated[ResponseTimeFilter, Query()]) -> dict[str, Any]:
    """Every recorded arrival, the median and 90th percentile, and the share within the golden time."""
    with request.app.state.engine.begin() as conn:
        return dispatching.response_times(repository.arrivals(conn, since=q.since, kind=q.kind))


@router.get("/incident-kinds", summary="Incident kinds · 사건 유형")
def kinds() -> list[dict[str, Any]]:
    return [{"code": k.code, "name_ko": k.name_ko, "name_en": k.name_en, "default_center": k.default_center}
            for k in incident_kinds().values()]
