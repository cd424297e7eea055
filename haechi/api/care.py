"""Care for the vulnerable (services 16–20), private by design.

Guardians (GUARDIAN tokens bound to a guardian profile) register wards with consent, devices and
safe zones; devices report positions and activity here or over MQTT. Positions are read only by
the ward's guardians, or by operators while a missing-person incident for the ward is open; every
read is in the ward's access log, which its guardians can see.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import StreamingResponse
from pydantic import AnyHttpUrl, Field
from shapely.geometry import Point, mapping, shape
from sqlalchemy import Connection

from haechi.care import repository
from haechi.care.geofence import parse_schedule
from haechi.care.reports import Refused, in_events, read_item
from haechi.care.rules import rules
from haechi.care.service import CareService, alert_body, around_m, in_school_hours, message_for
from haechi.care.trips import route_line
from haechi.core.clock import utcnow
from haechi.core.errors import Conflict, Forbidden, HaechiError, InvalidInput, NotFound
from haechi.core.events import Event
from haechi.model.access import Center, Role
from haechi.model.events import CARE_ALERT, CARE_CHANGED, CARE_REPORTS, event
from haechi.response.incidents import changed_event
from haechi.store import deadletters, places
from haechi.store.access import Principal
from haechi.store.incidents import get_incident

from .auth import Authenticated, readable_area, require
from .common import API_PREFIX, AreaCode, BigId, Db, Id, Moment, RequestBody, bbox_query, ensure_area_exists
from .problems import PROBLEM_RESPONSES
from .subscriptions import ensure_deliverable

router = APIRouter(prefix=f"{API_PREFIX}/care", tags=["care"], responses=PROBLEM_RESPONSES)

Guardian = Annotated[Principal, Depends(require(Role.GUARDIAN))]
Device = Annotated[Principal, Depends(require(Role.DEVICE))]
Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]
WardId = Id
Language = Literal["ko", "en", "zh", "ja", "vi"]
Need = Literal["large_text", "easy_read", "sign_language"]


def _service(request: Request) -> CareService:
    return request.app.state.care


# ── guardians ───────────────────────────────────────────────────────────────────────────


class ProfileIn(RequestBody):
    name: str = Field(min_length=1, max_length=100)
    language: Language = "ko"
    needs: list[Need] = Field(default_factory=list, description="large_text, easy_read, sign_language")
    hazards: list[str] = Field(default_factory=list, description="Disaster types wanted; empty = all")
    webhook_url: AnyHttpUrl | None = Field(
        None, description="Where this guardian's alerts are POSTed (https, to a public address)")


@router.put("/me", summary="My guardian profile · 보호자 정보")
def put_profile(request: Request, body: ProfileIn, who: Guardian, engine: Db) -> dict[str, Any]:
    """Binds the caller's GUARDIAN token to a guardian profile (created on first call)."""
    values = body.model_dump() | {"webhook_url": str(body.webhook_url) if body.webhook_url else None}
    if values["webhook_url"]:
        ensure_deliverable(request, values["webhook_url"], "body.webhook_url")
    with engine.begin() as conn:
        mine = repository.guardian_of_token(conn, who.token_id)
        if mine is None:
            return repository.add_guardian(conn, values | {"token_id": who.token_id})
        return repository.update_guardian(conn, mine["id"], values)


@router.get("/me", summary="My guardian profile and wards · 보호자 정보와 보호 대상")
def get_profile(who: Guardian, engine: Db) -> dict[str, Any]:
    with engine.begin() as conn:
        mine = _guardian(conn, who)
        return mine | {"wards": repository.wards_of_guardian(conn, mine["id"])}


def _guardian(conn: Connection, who: Principal) -> dict[str, Any]:
    mine = repository.guardian_of_token(conn, who.token_id)
    if mine is None:
        raise Forbidden("this token is not bound to a guardian profile; PUT /api/v1/care/me first")
    return mine


def _own_ward(conn: Connection, who: Principal, ward_id: int) -> dict[str, Any]:
    """The ward, if the caller is one of its guardians (403 otherwise, 404 for no such ward)."""
    mine = _guardian(conn, who)
    ward = repository.get_ward(conn, ward_id)
    if not repository.is_guardian(conn, ward_id, mine["id"]):
        raise Forbidden(f"guardian {mine['name']!r} is not a guardian of ward {ward_id}", field="path.ward_id")
    return ward


# ── wards and consent ───────────────────────────────────────────────────────────────────


class ConsentIn(RequestBody):
    consented_by: str = Field(min_length=1, max_length=100,
                              description="Who gave consent (the ward, or their legal representative)")
    relation: str = Field(min_length=1, max_length=32, examples=["self", "parent", "legal_guardian"])
    purpose: str = Field(min_length=1, max_length=300, examples=["location check while at school · 등하교 위치 확인"])
    valid_until: Moment = Field(description="Consent ends then; positions after it are refused")


class WardIn(RequestBody):
    kind: Literal["child", "dementia", "elderly_alone", "walker"]
    alias: str = Field(min_length=1, max_length=100, description="A name the guardian recognises; no real names needed")
    area_code: AreaCode | None = None
    relation: str | None = Field(None, max_length=32)
    consent: ConsentIn


@router.post("/wards", status_code=201, summary="Register a ward with consent · 보호 대상 등록 (동의 필수)")
def add_ward(body: WardIn, who: Guardian, engine: Db) -> dict[str, Any]:
    now = utcnow()
    if body.consent.valid_until <= now:
        raise InvalidInput("consent.valid_until must be in the future", field="body.consent.valid_until")
    with engine.begin() as conn:
        mine = _guardian(conn, who)
        ensure_area_exists(conn, body.area_code, "body.area_code")
        ward = repository.add_ward(conn, {"kind": body.kind, "alias": body.alias, "area_code": body.area_code},
                                   mine["id"], body.relation)
        consent = repository.add_consent(conn, ward["id"], body.consent.model_dump() | {
            "granted_at": now, "recorded_by": who.name})
        return ward | {"consents": [consent]}


@router.get("/wards", summary="My wards · 내 보호 대상")
def list_wards(who: Guardian, engine: Db) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        return repository.wards_of_guardian(conn, _guardian(conn, who)["id"])


@router.get("/wards/{ward_id}", summary="One ward · 보호 대상")
def get_ward(who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    with engine.begin() as conn:
        ward = _own_ward(conn, who, ward_id)
        return ward | {"consents": repository.consents(conn, ward_id), "devices": repository.devices_of(conn, ward_id),
                       "consent_in_force": ward_id in repository.consenting(conn, [ward_id], utcnow())}


class CoGuardianIn(RequestBody):
    guardian_id: int = Field(ge=1)
    relation: str | None = Field(None, max_length=32)


@router.post("/wards/{ward_id}/guardians", status_code=204, summary="Add a co-guardian · 공동 보호자 추가")
def add_co_guardian(body: CoGuardianIn, who: Guardian, engine: Db, ward_id: WardId) -> None:
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        try:
            repository.get_guardian(conn, body.guardian_id)
        except NotFound:
            raise InvalidInput(f"no guardian with id {body.guardian_id}", field="body.guardian_id") from None
        repository.add_guardian_to_ward(conn, ward_id, body.guardian_id, body.relation)


@router.post("/wards/{ward_id}/consents", status_code=201, summary="Record a new consent · 동의 기록")
def add_consent(body: ConsentIn, who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    if body.valid_until <= utcnow():
        raise InvalidInput("valid_until must be in the future", field="body.valid_until")
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        return repository.add_consent(conn, ward_id,
                                      body.model_dump() | {"granted_at": utcnow(), "recorded_by": who.name})


@router.delete("/wards/{ward_id}/consents", summary="Withdraw consent: tracking stops at once · 동의 철회")
async def withdraw_consent(request: Request, who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    """Every live consent ends now; later positions are refused (kept only as 'no consent', without
    coordinates), the active trip is cancelled and the ward's in-memory state forgotten."""
    def withdraw() -> int:
        with engine.begin() as conn:
            _own_ward(conn, who, ward_id)
            now = utcnow()
            for trip in repository.active_trips(conn):
                if trip["ward_id"] == ward_id:
                    repository.end_trip(conn, trip["id"], "cancelled", now)
            return repository.withdraw_consent(conn, ward_id, now)

    withdrawn = await anyio.to_thread.run_sync(withdraw)
    await _changed(request, ward_id, "consent", lambda care: care.forget(ward_id))
    return {"ward_id": ward_id, "withdrawn": withdrawn}


@router.get("/wards/{ward_id}/consents", summary="Consent history · 동의 이력")
def list_consents(who: Guardian, engine: Db, ward_id: WardId) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        return repository.consents(conn, ward_id)


async def _changed(request: Request, ward_id: int, what: str,
                   here: Callable[[CareService], Awaitable[None]]) -> None:
    """A ward's zones, trip or consent changed (committed already). The process that leads runs the
    care service: ``here`` updates it. An API replica has none that watches anything, so it tells the
    leading engine (``care.changed``), which reloads the ward from the store. An in-process bus with
    no engine on it tells nobody: an engine reads everything from the store when it starts."""
    if request.app.state.runtime.leading:
        await here(_service(request))
        return
    bus = request.app.state.bus
    if bus.wants(CARE_CHANGED):  # NATS: durable, waits for an engine that is down (BusUnavailable: 503)
        await bus.publish(event(CARE_CHANGED, {"ward_id": ward_id, "what": what}))


# ── devices and zones ───────────────────────────────────────────────────────────────────


class DeviceIn(RequestBody):
    ref: str = Field(pattern=r"^[A-Za-z0-9_.\-]{1,64}$", description="The id the device uses in its MQTT topic")
    kind: Literal["tracker", "door", "motion", "power"]


@router.post("/wards/{ward_id}/devices", status_code=201, summary="Register a device · 기기 등록")
def add_device(body: DeviceIn, who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        return repository.add_device(conn, ward_id, body.ref, body.kind)


class ScheduleWindow(RequestBody):
    days: list[int] = Field(default_factory=lambda: list(range(7)), description="0 = Monday … 6 = Sunday")
    start: str = Field(pattern=r"^\d{2}:\d{2}$", examples=["08:30"])
    end: str = Field(pattern=r"^\d{2}:\d{2}$", examples=["15:00"])


class ZoneIn(RequestBody):
    kind: Literal["home", "school", "daycare", "other"]
    name: str = Field(min_length=1, max_length=100)
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON Polygon; or give lon, lat and radius_m")
    lon: float | None = Field(None, ge=-180, le=180)
    lat: float | None = Field(None, ge=-90, le=90)
    radius_m: float | None = Field(None, gt=0, le=5000)
    schedule: list[ScheduleWindow] = Field(default_factory=list, description="When the ward is expected inside (KST)")


@router.post("/wards/{ward_id}/zones", status_code=201, summary="Add a safe zone · 안심구역 추가")
async def add_zone(request: Request, body: ZoneIn, who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    geometry = _zone_geometry(body)
    schedule = [w.model_dump() for w in body.schedule]
    try:
        parse_schedule(schedule)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="body.schedule") from None

    def save() -> dict[str, Any]:
        with engine.begin() as conn:
            _own_ward(conn, who, ward_id)
            return repository.add_zone(conn, ward_id, {"kind": body.kind, "name": body.name,
                                                       "geometry": geometry, "schedule": schedule})

    zone = await anyio.to_thread.run_sync(save)
    await _changed(request, ward_id, "zone", lambda care: care.reload_zones())
    return zone


def _zone_geometry(body: ZoneIn) -> dict[str, Any]:
    if body.geometry is not None:
        try:
            polygon = shape(body.geometry)
        except Exception:  # noqa: BLE001 - shapely raises many kinds for bad GeoJSON
            raise InvalidInput("geometry is not valid GeoJSON", field="body.geometry") from None
        if polygon.geom_type not in ("Polygon", "MultiPolygon") or not polygon.is_valid:
            raise InvalidInput("geometry must be a valid GeoJSON Polygon or MultiPolygon", field="body.geometry")
        return mapping(polygon)
    if None in (body.lon, body.lat, body.radius_m):
        raise InvalidInput("give geometry, or lon, lat and radius_m", field="body.geometry")
    return mapping(around_m(Point(body.lon, body.lat), body.radius_m))


@router.get("/wards/{ward_id}/zones", summary="Safe zones · 안심구역")
def list_zones(who: Guardian, engine: Db, ward_id: WardId) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        return repository.zones(conn, ward_id)


@router.delete("/wards/{ward_id}/zones/{zone_id}", status_code=204, summary="Remove a safe zone")
async def delete_zone(request: Request, who: Guardian, engine: Db, ward_id: WardId,
                      zone_id: Id) -> None:
    def remove() -> None:
        with engine.begin() as conn:
            _own_ward(conn, who, ward_id)
            repository.delete_zone(conn, ward_id, zone_id)

    await anyio.to_thread.run_sync(remove)
    await _changed(request, ward_id, "zone", lambda care: care.reload_zones())


# ── reports from devices over HTTP ──────────────────────────────────────────────────────


class NoCareEngine(HaechiError):
    """Reports came to a process that neither judges them nor can hand them on: nothing would
    store them, so the device must not count them as delivered."""

    status = 503
    title = "Service unavailable"


@router.post("/reports/{kind}", summary="Device reports over HTTP · 기기 보고 (위치·활동·SOS)", responses={
    202: {"description": "Queued for the care engine (an API replica of a cluster): judged there, moments later"}})
async def post_reports(request: Request, response: Response, who: Device,
                       kind: Literal["position", "activity", "sos"]) -> dict[str, Any]:
    """A JSON object or array; each names its ``device``. Refused reports are kept as dead letters
    (without coordinates) and counted; the first refusal is named.

    Where this process runs the care engine (one process, the default) the reports are judged at
    once: 200 with what was stored, refused and alerted. An API replica of a cluster hands them to
    the leading engine over the bus instead and answers 202 once the bus holds them (``queued``;
    the engine keeps refusals it finds, unknown devices or no consent, as dead letters), or 503
    when the bus does not take them: send them again."""
    raw = await request.body()
    source = f"http:{API_PREFIX}/care/reports/{kind}"
    try:
        document = json.loads(raw)
    except ValueError as exc:
        reason = f"body is not valid JSON: {exc}"

        def keep() -> None:  # kept, but not its bytes: they may still hold someone's position
            with request.app.state.engine.begin() as conn:
                deadletters.keep(conn, source, reason,
                                 f"({len(raw)} bytes, not kept: unreadable reports may hold positions)")
        await anyio.to_thread.run_sync(keep)
        raise InvalidInput(reason, field="body") from None
    service = _service(request)
    now = utcnow()
    items = [read_item(kind, item, now, service.max_future_s)
             for item in (document if isinstance(document, list) else [document])]
    first = next((i for i in items if isinstance(i, Refused)), None)
    first_refusal = {"field": first.field, "reason": first.reason} if first else None
    if not request.app.state.runtime.leading:  # no zones, trips or geofence states here: the leader judges
        response.status_code = 202
        return {"queued": await _hand_to_engine(request, items, source, now, who.token_id),
                "first_refusal": first_refusal}
    outcome = await service.report(items, source, now, token_id=who.token_id)
    return {"positions": outcome.positions, "activity": outcome.activity, "refused": outcome.refused,
            "alerts": len(outcome.alerts), "first_refusal": first_refusal}


async def _hand_to_engine(request: Request, items: list, source: str, now: datetime, token_id: int | None) -> int:
    """Publish the reports for the leading engine (``care.reports``, as many events as their size
    needs), each with an id of its own so that the engine stores it once; returns once the bus has
    acknowledged them all (a NATS bus raises ``BusUnavailable``, a 503, when it does not)."""
    bus = request.app.state.bus
    if not bus.wants(CARE_REPORTS):  # an in-process bus with no engine on it
        raise NoCareEngine("no care engine takes reports on this process's bus; set HAECHI_BUS_URL")
    for reports in in_events(items):
        await bus.publish(event(CARE_REPORTS, {"id": uuid.uuid4().hex, "source": source,
                                               "received_at": now.isoformat(), "token_id": token_id,
                                               "reports": reports}))
    return len(items)


# ── positions: the guarded read ─────────────────────────────────────────────────────────


@router.get("/wards/{ward_id}/positions", summary="A ward's positions · 위치 조회 (기록됨)")
def read_positions(who: Authenticated, engine: Db, ward_id: WardId,
                   since: Annotated[Moment | None, Query()] = None,
                   limit: Annotated[int, Query(ge=1, le=5000)] = 500) -> dict[str, Any]:
    """Guardians of the ward, or operators while a missing-person incident for it is open.
    Every attempt — allowed or refused — is written to the ward's access log."""
    with engine.begin() as conn:
        repository.get_ward(conn, ward_id)
        basis = _position_reader(conn, who, ward_id)
        repository.log_access(conn, ward_id, who.name, who.role,
                              "read positions" if basis else "refused: read positions",
                              {"basis": basis, "since": since.isoformat() if since else None, "limit": limit})
        found = repository.positions(conn, ward_id, since=since, limit=limit) if basis else None
    if found is None:
        raise Forbidden(f"token {who.name!r} may not read the positions of ward {ward_id}: only its guardians, "
                        "or operators during an open missing-person incident", field="path.ward_id")
    return {"ward_id": ward_id, "basis": basis, "positions": found}


def _position_reader(conn: Connection, who: Principal, ward_id: int) -> str | None:
    """Why this caller may read the ward's positions, or None."""
    if who.role == Role.GUARDIAN:
        mine = repository.guardian_of_token(conn, who.token_id)
        return "guardian" if mine and repository.is_guardian(conn, ward_id, mine["id"]) else None
    if who.role in (Role.OPERATOR, Role.ADMIN):
        link = repository.open_incident_of(conn, ward_id)
        if link and _incident_open(conn, link["incident_id"]):
            return f"incident:{link['incident_id']}"
    return None


def _incident_open(conn: Connection, incident_id: int | None) -> bool:
    try:
        return incident_id is not None and get_incident(conn, incident_id)["status"] != "closed"
    except NotFound:
        return False


@router.get("/wards/{ward_id}/access-log", summary="Who read this ward's data · 열람 기록")
def read_access_log(who: Guardian, engine: Db, ward_id: WardId) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        return repository.access_log(conn, ward_id)


@router.get("/wards/{ward_id}/alerts", summary="A ward's alerts (no positions) · 알림 이력")
def list_alerts(who: Guardian, engine: Db, ward_id: WardId) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        return repository.alerts(conn, ward_id, with_position=False)


@router.get("/wards/{ward_id}/export", summary="Export a ward's data, without positions · 정보 열람 (PIPA 제35조)")
def export_ward(who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        repository.log_access(conn, ward_id, who.name, who.role, "export", None)
        return repository.export(conn, ward_id)


@router.post("/alerts/{alert_id}/answer", summary="Answer a welfare check · 안부 확인 응답")
def answer_alert(who: Guardian, engine: Db, alert_id: BigId) -> dict[str, Any]:
    with engine.begin() as conn:
        alert = repository.get_alert(conn, alert_id)
        _own_ward(conn, who, alert["ward_id"])
        if alert["kind"] != "welfare_check":
            raise Conflict(f"alert {alert_id} is a {alert['kind']} alert; only welfare checks are answered")
        if alert["status"] == "open":
            repository.set_alert(conn, alert_id, status="answered", answered_at=utcnow())
        return {k: v for k, v in repository.get_alert(conn, alert_id).items() if k not in ("lon", "lat")}


# ── missing person ──────────────────────────────────────────────────────────────────────


@router.post("/wards/{ward_id}/missing", status_code=201, summary="Report missing: incident for 119 · 실종 신고")
async def report_missing(request: Request, who: Authenticated, engine: Db, ward_id: WardId) -> dict[str, Any]:
    """A guardian of the ward opens a missing-person incident for the 119 center at the last known
    position; while it is open, operators may read the ward's track (each read logged).

    Only guardians: an operator must not be able to grant themselves access to positions.
    """
    def guard() -> None:
        if who.role != Role.GUARDIAN:
            raise Forbidden("only the ward's guardians report a ward missing")
        with engine.begin() as conn:
            _own_ward(conn, who, ward_id)

    await anyio.to_thread.run_sync(guard)
    incident = await anyio.to_thread.run_sync(lambda: _service(request).open_missing(ward_id, who))
    # Announced as every incident is (the room and the 119 desk follow incident.changed).
    await request.app.state.bus.publish(changed_event(incident, "opened"))
    return {"ward_id": ward_id, "incident_id": incident["id"], "center": incident["center"],
            "status": incident["status"]}


@router.post("/wards/{ward_id}/missing/close", summary="Found: operators lose position access · 실종 해제")
def close_missing(who: Authenticated, engine: Db, ward_id: WardId) -> dict[str, Any]:
    with engine.begin() as conn:
        if who.role == Role.GUARDIAN:
            _own_ward(conn, who, ward_id)
        elif who.role not in (Role.OPERATOR, Role.ADMIN):
            raise Forbidden("only the ward's guardians or operators close a missing report")
        return {"ward_id": ward_id, "closed": repository.close_incidents(conn, ward_id, utcnow())}


# ── safe return home (service 18) ───────────────────────────────────────────────────────


class TripIn(RequestBody):
    route: dict[str, Any] = Field(description="GeoJSON LineString from here to home")
    expected_at: Moment
    contacts: list[int] = Field(default_factory=list,
                                description="Guardian ids to alert; empty = all the ward's guardians")


@router.post("/wards/{ward_id}/trips", status_code=201, summary="Start a safe trip home · 안심귀가 시작")
async def start_trip(request: Request, body: TripIn, who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    try:
        route = route_line(body.route)
    except ValueError as exc:
        raise InvalidInput(str(exc), field="body.route") from None
    if body.expected_at <= utcnow():
        raise InvalidInput("expected_at must be in the future", field="body.expected_at")

    def save() -> dict[str, Any]:
        with engine.begin() as conn:
            _own_ward(conn, who, ward_id)
            if ward_id not in repository.consenting(conn, [ward_id], utcnow()):
                raise Conflict(f"ward {ward_id} has no consent in force; record one first")
            guardians = {g["id"] for g in repository.guardians_of(conn, [ward_id]).get(ward_id, [])}
            if unknown := set(body.contacts) - guardians:
                raise InvalidInput(f"contacts {sorted(unknown)} are not guardians of ward {ward_id}",
                                   field="body.contacts")
            trip = repository.start_trip(conn, ward_id, {"route": mapping(route), "started_at": utcnow(),
                                                         "expected_at": body.expected_at, "contacts": body.contacts})
            return trip | {"safe_spots": safe_spots(conn, route)}

    trip = await anyio.to_thread.run_sync(save)
    await _changed(request, ward_id, "trip", lambda care: care.add_trip(trip))
    return trip


def safe_spots(conn: Connection, route) -> list[dict[str, Any]]:
    """24-hour stores, police boxes and CCTV within reach of the route, nearest first."""
    trip = rules()["trip"]
    reach = around_m(route, trip["safe_spot_within_m"])
    kinds = [*trip["safe_spot_kinds"], "cctv"]
    found = []
    for kind in kinds:
        for p in places.list_places(conn, kind, bbox=reach.bounds):
            if p["lon"] is not None and reach.covers(Point(p["lon"], p["lat"])):
                found.append({"id": p["id"], "kind": kind, "name_ko": p["name_ko"], "name_en": p.get("name_en"),
                              "lon": p["lon"], "lat": p["lat"]})
    return found


@router.get("/trips/{trip_id}", summary="A trip and its safe spots · 안심귀가 현황")
def get_trip(who: Guardian, engine: Db, trip_id: Id) -> dict[str, Any]:
    with engine.begin() as conn:
        trip = repository.get_trip(conn, trip_id)
        _own_ward(conn, who, trip["ward_id"])
        return trip | {"safe_spots": safe_spots(conn, route_line(trip["route"]))}


@router.post("/trips/{trip_id}/end", summary="End a trip · 안심귀가 종료")
async def end_trip(request: Request, who: Guardian, engine: Db, trip_id: Id) -> dict[str, Any]:
    def end() -> dict[str, Any]:
        with engine.begin() as conn:
            trip = repository.get_trip(conn, trip_id)
            _own_ward(conn, who, trip["ward_id"])
            repository.end_trip(conn, trip_id, "cancelled", utcnow())
            return repository.get_trip(conn, trip_id)

    trip = await anyio.to_thread.run_sync(end)
    await _changed(request, trip["ward_id"], "trip", lambda care: care.end_trip(trip["ward_id"]))
    return trip


# ── child traffic safety (service 17) ───────────────────────────────────────────────────


@router.get("/school-zones", summary="School zones as GeoJSON · 어린이보호구역")
def school_zones(engine: Db, bbox: Annotated[str | None, Query(description="w,s,e,n")] = None) -> dict[str, Any]:
    """Public data: the school zones (places of kind school_zone) with their radius or shape."""
    box = bbox_query(bbox) if bbox else None
    radius = rules()["school"]["zone_radius_m"]
    with engine.begin() as conn:
        rows = places.list_places(conn, "school_zone", bbox=box)
    features = []
    for p in rows:
        if p["lon"] is None:
            continue
        geometry = p.get("geometry") or mapping(around_m(Point(p["lon"], p["lat"]), p.get("radius_m") or radius))
        features.append({"type": "Feature", "id": p["id"], "geometry": geometry, "properties": {
            "name_ko": p["name_ko"], "name_en": p.get("name_en"), "school_name": p.get("school_name"),
            "radius_m": p.get("radius_m") or radius, "area_code": p["area_code"], "source": p["source"]}})
    return {"type": "FeatureCollection", "features": features}


@router.get("/wards/{ward_id}/school-safety", summary="For parents: the school route today · 통학 안전 정보")
def school_safety(request: Request, who: Guardian, engine: Db, ward_id: WardId) -> dict[str, Any]:
    """The ward's school zones, the public school zones around them, active warnings and open
    incidents nearby, and whether it is school hours now."""
    radius = rules()["school"]["zone_radius_m"]
    hazards = request.app.state.care.geofence.hazards
    with engine.begin() as conn:
        _own_ward(conn, who, ward_id)
        schools = [z for z in repository.zones(conn, ward_id) if z["kind"] == "school"]
        result = []
        for zone in schools:
            around = around_m(shape(zone["geometry"]), radius)
            result.append({
                "zone": {"id": zone["id"], "name": zone["name"]},
                "school_zones": [{"id": p["id"], "name_ko": p["name_ko"], "lon": p["lon"], "lat": p["lat"]}
                                 for p in places.list_places(conn, "school_zone", bbox=around.bounds)
                                 if p["lon"] is not None and around.covers(Point(p["lon"], p["lat"]))],
                "warnings": [{"warning_id": h.warning_id, "hazard": h.hazard, "level": h.level}
                             for h in hazards if around.intersects(h.geometry)],
                "incidents": _incidents_near(conn, around),
            })
    return {"ward_id": ward_id, "school_hours": in_school_hours(utcnow()), "schools": result}


def _incidents_near(conn: Connection, around) -> list[dict[str, Any]]:
    from haechi.response.incidents import queue

    # never another family's missing child: those incidents name a ward
    return [{"id": i["id"], "kind": i["kind"], "title": i["title"], "status": i["status"]}
            for i in queue(conn, center=None, status="open", limit=1000)
            if i["kind"] != "missing_person" and i["lon"] is not None and around.covers(Point(i["lon"], i["lat"]))]


# ── alert channel: SSE for guardians, the CCTV center and district offices ──────────────


@router.get("/alerts/stream", summary="Live care alerts (SSE) · 실시간 돌봄 알림", response_class=StreamingResponse)
async def alert_stream(request: Request, who: Authenticated) -> StreamingResponse:
    """Guardians get their wards' alerts rendered for them (with the position); CCTV-center
    operators trip and SOS alerts with the live position; district officials (and operators)
    escalated welfare checks of their area. Each position sent is written to the access log."""
    engine = request.app.state.engine
    if who.role not in (Role.GUARDIAN, Role.OPERATOR, Role.DISTRICT_OFFICIAL, Role.ADMIN):
        raise Forbidden("care alerts stream to guardians, operators and district officials")
    if who.role == Role.GUARDIAN:
        await anyio.to_thread.run_sync(_in_tx, engine, _guardian, who)
    queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=1000)

    async def enqueue(event: Event) -> None:
        if not queue.full():
            queue.put_nowait(event)

    unsubscribe = request.app.state.bus.subscribe(CARE_ALERT, enqueue)

    async def events() -> AsyncIterator[str]:
        try:
            yield ": connected\n\n"
            while True:
                try:
                    event = await asyncio.wait_for(queue.get(), 15.0)
                except TimeoutError:
                    yield ": heartbeat\n\n"
                    continue
                body = await anyio.to_thread.run_sync(_in_tx, engine, _for_reader, who, event.data["alert_id"])
                if body is not None:
                    yield f"event: {CARE_ALERT}\ndata: {json.dumps(body, ensure_ascii=False, default=str)}\n\n"
        finally:
            unsubscribe()

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _in_tx(engine, fn, *args):
    with engine.begin() as conn:
        return fn(conn, *args)


def _for_reader(conn: Connection, who: Principal, alert_id: int) -> dict[str, Any] | None:
    """The alert as this reader may see it, or None when it is not theirs."""
    alert = repository.get_alert(conn, alert_id)
    ward = repository.get_ward(conn, alert["ward_id"])
    to = alert["detail"]["to"]
    if who.role == Role.GUARDIAN:
        mine = repository.guardian_of_token(conn, who.token_id)
        if mine is None or mine["id"] not in to["guardians"]:
            return None
        body = alert_body(alert, ward, message_for(alert, ward, mine), True)
    elif who.role in (Role.OPERATOR, Role.ADMIN) and who.center == Center.CCTV and "cctv" in to["centers"]:
        body = alert_body(alert, ward, message_for(alert, ward, {"language": "ko", "needs": []}), True)
    elif who.role in (Role.DISTRICT_OFFICIAL, Role.OPERATOR, Role.ADMIN) and to["district"] is not None:
        try:
            readable_area(who, to["district"], "district")
        except Forbidden:
            return None
        body = alert_body(alert, ward, message_for(alert, ward, {"language": "ko", "needs": []}), False)
    else:
        return None
    if "position" in body:
        repository.log_access(conn, ward["id"], who.name, who.role, "alert position streamed",
                              {"alert_id": alert_id, "kind": alert["kind"]})
    return body


@router.get("/escalations", summary="Unanswered welfare checks · 안부 미확인 (구청)")
def escalations(who: Staff, engine: Db, area: Annotated[AreaCode | None, Query()] = None) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        return repository.escalations(conn, readable_area(who, area, "query.area"))

