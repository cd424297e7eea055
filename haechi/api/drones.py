"""Drones: registered with a base, assigned to incidents; telemetry through the sensing pipeline.

A drone's telemetry may come here (`POST /api/v1/drones/{id}/telemetry`, one message of
position, altitude and battery) or straight to its datastreams like any sensor (MQTT, bulk upload,
SensorThings). Either way the pipeline checks and stores it, refusals become dead letters, and
``drone.position`` events reach the live stream.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from haechi.core.clock import utcnow
from haechi.core.errors import InvalidInput
from haechi.model.access import Role
from haechi.model.events import DRONE_CHANGED
from haechi.response import drones as service
from haechi.response import repository
from haechi.store.access import Principal

from .auth import require
from .common import API_PREFIX, Id, Lat, Lon, Moment, RequestBody
from .incidents import Operator, Staff, in_transaction, publish
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["drones"], responses=PROBLEM_RESPONSES)
DroneId = Id
Device = Annotated[Principal, Depends(require(Role.DEVICE, Role.OPERATOR))]


class DroneIn(RequestBody):
    call_sign: str = Field(min_length=1, max_length=64, examples=["서울소방-드론1"])
    model: str | None = Field(None, max_length=100, examples=["DJI Matrice 30T"])
    base_place_id: int | None = Field(None, ge=1, description="A place (e.g. the fire station) the drone flies from")
    base_lon: Lon | None = None
    base_lat: Lat | None = None


class AssignIn(RequestBody):
    incident_id: int | None = Field(description="The incident to fly to; null sends it back to base")


class TelemetryIn(RequestBody):
    time: Moment | None = Field(None, description="When the fix was taken; now if left out")
    lon: Lon
    lat: Lat
    altitude_m: float | None = Field(None, ge=-100, le=1_000, description="Above ground; Korean drone rules cap "
                                     "ordinary flight at 150 m (항공안전법 시행규칙 제310조), "
                                     "emergency flights may exceed it")
    battery_pct: float | None = Field(None, ge=0, le=100)


@router.post("/drones", status_code=201, summary="Register a drone · 드론 등록")
async def register(body: DroneIn, who: Operator, request: Request, response: Response) -> dict[str, Any]:
    """Creates the drone's SensorThings Thing with datastreams for longitude, latitude, altitude and battery."""
    drone = await in_transaction(request, lambda conn: service.register(conn, **body.model_dump()))
    response.headers["Location"] = f"{API_PREFIX}/drones/{drone['id']}"
    return drone


@router.get("/drones", summary="Drones · 드론 목록")
def list_drones(who: Staff, request: Request) -> list[dict[str, Any]]:
    with request.app.state.engine.begin() as conn:
        return [{**d, "position": service.latest_position(conn, d)} for d in repository.find_drones(conn)]


@router.get("/drones/{drone_id}", summary="One drone · 드론")
def get_drone(who: Staff, request: Request, drone_id: DroneId) -> dict[str, Any]:
    with request.app.state.engine.begin() as conn:
        drone = repository.get_drone(conn, drone_id)
        return {**drone, "position": service.latest_position(conn, drone)}


@router.post("/drones/{drone_id}/assign", summary="Assign a drone to an incident · 드론 투입")
async def assign(body: AssignIn, who: Operator, request: Request, drone_id: DroneId) -> dict[str, Any]:
    drone = await in_transaction(request, lambda conn: service.assign(conn, drone_id, body.incident_id, actor=who))
    await publish(request, DRONE_CHANGED, drone)
    return drone


@router.post("/drones/{drone_id}/telemetry", summary="Drone telemetry · 드론 위치 보고")
async def telemetry(body: TelemetryIn, who: Device, request: Request, drone_id: DroneId) -> JSONResponse:
    """One fix, stored through the sensing pipeline (one reading per property, idempotent by time)."""
    drone = await in_transaction(request, lambda conn: repository.get_drone(conn, drone_id))
    at = body.time or utcnow()
    values = {"lon": body.lon, "lat": body.lat, "altitude_m": body.altitude_m, "battery_pct": body.battery_pct}
    report = await request.app.state.sink.ingest(service.readings(drone, values, at),
                                                 f"http:drone:{drone['call_sign']}")
    if report.rejected:
        first = report.rejected[0]
        raise InvalidInput(f"telemetry refused (kept as a dead letter): {first.reason}", field="body.time")
    # drone.position reaches the live stream from the stored observations
    # (haechi.response.drone_positions), the same way for telemetry sent here, over MQTT or through SensorThings.
    return JSONResponse(report.as_dict(), status_code=202 if request.app.state.sink.queued else 200)


@router.get("/drones/{drone_id}/track", summary="A drone's track as GeoJSON · 드론 비행 경로")
def track(who: Staff, request: Request, drone_id: DroneId,
          since: Annotated[Moment | None, Query(description="Only fixes from this time")] = None) -> dict[str, Any]:
    """A GeoJSON Feature: a LineString of (lon, lat, altitude) fixes, oldest first, with their times."""
    with request.app.state.engine.begin() as conn:
        return service.track(conn, repository.get_drone(conn, drone_id), since=since)
