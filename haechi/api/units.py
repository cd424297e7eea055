"""119 units (소방 출동대): where they are and their status, available → dispatched → on scene → returning."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from pydantic import Field

from haechi.model.events import UNIT_CHANGED
from haechi.response import dispatch as dispatching
from haechi.response import repository

from .common import API_PREFIX, Id, Lat, Lon, OptionalPoint, QueryParams, RequestBody
from .incidents import Operator, Staff, in_transaction, publish
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["units"], responses=PROBLEM_RESPONSES)
UnitId = Id


class UnitIn(OptionalPoint):
    call_sign: str = Field(min_length=1, max_length=64, examples=["강남119-펌프1"])
    unit_type: str = Field(examples=["pumper"], description=", ".join(dispatching.UNIT_TYPES))
    station_place_id: int = Field(ge=1, description="The fire station (a place of kind fire_station)")


class UnitStatusIn(OptionalPoint):
    status: str = Field(pattern=r"^[a-z_]{1,16}$", examples=["returning"])


class PositionIn(RequestBody):
    lon: Lon
    lat: Lat


class UnitFilter(QueryParams):
    status: str | None = Field(None, pattern=r"^[a-z_]{1,16}$")
    station: int | None = Field(None, ge=1, description="Station place id")


@router.get("/units", summary="119 units · 출동대 목록")
def list_units(who: Staff, request: Request, q: Annotated[UnitFilter, Query()]) -> list[dict[str, Any]]:
    with request.app.state.engine.begin() as conn:
        return repository.find_units(conn, status=q.status, station_place_id=q.station)


@router.get("/units.geojson", summary="119 units as a map layer · 출동대 지도")
def units_geojson(who: Staff, request: Request) -> dict[str, Any]:
    with request.app.state.engine.begin() as conn:
        units = repository.find_units(conn)
    return {"type": "FeatureCollection", "features": [
        {"type": "Feature", "id": u["id"], "geometry": {"type": "Point", "coordinates": [u["lon"], u["lat"]]},
         "properties": {k: u[k] for k in ("id", "call_sign", "unit_type", "status", "station_name_ko")}}
        for u in units if u["lon"] is not None]}


@router.post("/units", status_code=201, summary="Register a unit · 출동대 등록")
async def add_unit(body: UnitIn, who: Operator, request: Request, response: Response) -> dict[str, Any]:
    unit = await in_transaction(request, lambda conn: dispatching.add_unit(conn, **body.model_dump()))
    await publish(request, UNIT_CHANGED, unit)
    response.headers["Location"] = f"{API_PREFIX}/units/{unit['id']}"
    return unit


@router.get("/units/{unit_id}", summary="One unit · 출동대")
def get_unit(who: Staff, request: Request, unit_id: UnitId) -> dict[str, Any]:
    with request.app.state.engine.begin() as conn:
        return dispatching.unit(conn, unit_id)


@router.post("/units/{unit_id}/status", summary="Change a unit's status · 출동대 상태")
async def change_status(body: UnitStatusIn, who: Operator, request: Request, unit_id: UnitId) -> dict[str, Any]:
    """Illegal moves answer 409 naming the allowed ones; `on_scene` records the arrival of its dispatch."""
    unit = await in_transaction(request, lambda conn: dispatching.move_unit(
        conn, unit_id, body.status, actor=who, lon=body.lon, lat=body.lat))
    await publish(request, UNIT_CHANGED, unit)
    return unit


@router.post("/units/{unit_id}/position", summary="Report a unit's position · 출동대 위치")
async def set_position(body: PositionIn, who: Operator, request: Request, unit_id: UnitId) -> dict[str, Any]:
    unit = await in_transaction(request, lambda conn: dispatching.set_position(conn, unit_id, body.lon, body.lat))
    await publish(request, UNIT_CHANGED, unit)
    return unit
