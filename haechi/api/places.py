"""Places of the city: facilities, shelters, stations, hospitals, CCTV, school zones, gauges."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, Field, PlainValidator, field_validator

from haechi.cities.targeting import locate, settle_places
from haechi.model.access import CITY_EDITORS
from haechi.model.city import FacilityType, PlaceKind, ShelterKind
from haechi.model.geo import parse_bbox
from haechi.store import places
from haechi.store.access import Principal

from .auth import ensure_in_own_area, require
from .common import (
    API_PREFIX,
    MAX_INTEGER,
    AreaCode,
    Db,
    Id,
    Lat,
    Limit,
    Lon,
    QueryParams,
    RequestBody,
    ensure_area_exists,
)
from .problems import PROBLEM_RESPONSES
from .public_cache import PLACES, share

router = APIRouter(prefix=API_PREFIX, tags=["places"], responses=PROBLEM_RESPONSES)

Editor = Annotated[Principal, Depends(require(*CITY_EDITORS))]


class PlaceFilter(QueryParams):
    kind: PlaceKind | None = Field(
        None, description="Only places of this kind (adds its detail columns)"
    )
    area: AreaCode | None = Field(None, description="Only places inside this area (code prefix)")
    bbox: str | None = Field(
        None, description="w,s,e,n in WGS84 degrees", examples=["126.9,37.5,127.1,37.6"]
    )
    limit: Limit = 100

    @field_validator("bbox")
    @classmethod
    def _bbox_parses(cls, bbox: str | None) -> str | None:
        if bbox is not None:
            parse_bbox(bbox)
        return bbox


class NearestQuery(QueryParams):
    lon: Lon
    lat: Lat
    kind: list[PlaceKind] = Field(
        [], description="Only these kinds (repeat the parameter for several)"
    )
    within_m: float = Field(5_000, gt=0, le=50_000, description="Search radius in metres")
    limit: int = Field(10, ge=1, le=100)


# ── Writing places ───────────────────────────────────────────────────────────────────────


class PlaceIn(RequestBody):
    """The facts every place has; ``ref`` is the publisher's own id, so a resend updates."""

    kind: PlaceKind
    ref: str = Field(min_length=1, max_length=64)
    name_ko: str = Field(min_length=1, max_length=200)
    name_en: str | None = Field(None, max_length=200)
    area_code: AreaCode | None = None
    address: str | None = Field(None, max_length=300)
    lon: Lon
    lat: Lat
    attrs: dict[str, Any] | None = None
    source: str | None = Field(None, max_length=300)


class FacilityIn(PlaceIn):
    facility_type: FacilityType
    structure_type: str | None = Field(None, max_length=64)
    completion_year: int | None = Field(None, ge=1800, le=2100)
    safety_grade: Literal["A", "B", "C", "D", "E"] | None = Field(
        None, description="시설물 안전등급, A best"
    )
    floors: int | None = Field(None, ge=0, le=MAX_INTEGER)
    length_m: float | None = Field(None, gt=0)


class ShelterIn(PlaceIn):
    shelter_kind: ShelterKind
    capacity: int | None = Field(None, ge=0, le=MAX_INTEGER, description="Persons")
    floor_area_m2: float | None = Field(None, gt=0)


class HospitalIn(PlaceIn):
    emergency_level: str | None = Field(None, max_length=32)
    er_beds: int | None = Field(None, ge=0, le=MAX_INTEGER)


class CctvIn(PlaceIn):
    purpose: str | None = Field(None, max_length=64)
    direction_deg: float | None = Field(None, ge=0, lt=360, description="Clockwise from north")
    fov_deg: float | None = Field(None, gt=0, le=360)
    range_m: float | None = Field(None, gt=0)


class SchoolZoneIn(PlaceIn):
    school_name: str | None = Field(None, max_length=200)
    radius_m: float | None = Field(None, gt=0)
    geometry: dict[str, Any] | None = None


class GaugeIn(PlaceIn):
    river: str | None = Field(None, max_length=100)
    stages: dict[str, Any] | None = Field(
        None, description="Flood stages in metres, with their source"
    )


#: The body model of each kind; kinds without detail facts use ``PlaceIn``.
PLACE_MODELS: dict[str, type[PlaceIn]] = {
    PlaceKind.FACILITY: FacilityIn,
    PlaceKind.SHELTER: ShelterIn,
    PlaceKind.HOSPITAL: HospitalIn,
    PlaceKind.CCTV: CctvIn,
    PlaceKind.SCHOOL_ZONE: SchoolZoneIn,
    PlaceKind.RIVER_GAUGE: GaugeIn,
}


class _KindOnly(BaseModel):
    kind: PlaceKind


def validate_place(value: Any) -> PlaceIn:
    """Pick the model by ``kind`` first, so errors name ``places.N.field`` with no union noise."""
    if isinstance(value, PlaceIn):
        return value
    kind = _KindOnly.model_validate(value).kind  # errors here name places.N.kind
    return PLACE_MODELS.get(kind, PlaceIn).model_validate(value)


AnyPlaceIn = Annotated[
    PlaceIn,
    PlainValidator(
        validate_place,
        json_schema_input_type=FacilityIn
        | ShelterIn
        | HospitalIn
        | CctvIn
        | SchoolZoneIn
        | GaugeIn
        | PlaceIn,
    ),
]


class PlacesIn(RequestBody):
    places: list[AnyPlaceIn] = Field(min_length=1, max_length=1000)


class PlacesSaved(BaseModel):
    saved: int = Field(description="Places inserted or updated (matched by kind and ref)")


@router.get("/places", summary="List places · 장소 목록")
def list_places(request: Request, engine: Db, q: Annotated[PlaceFilter, Query()]) -> list[dict[str, Any]]:
    """Places ordered by kind and ref; with `kind`, each row carries that kind's detail columns."""
    share(request, PLACES)
    box = parse_bbox(q.bbox) if q.bbox else None
    with engine.begin() as conn:
        return places.list_places(conn, q.kind, area_code=q.area, bbox=box, limit=q.limit)


@router.get("/places/nearest", summary="Nearest places · 가까운 장소")
def nearest_places(request: Request, engine: Db, q: Annotated[NearestQuery, Query()]) -> list[dict[str, Any]]:
    """Places within `within_m` metres of (lon, lat), nearest first, each with `distance_m`."""
    share(request, PLACES)
    with engine.begin() as conn:
        return places.nearest(
            conn, q.lon, q.lat, kinds=q.kind or None, within_m=q.within_m, limit=q.limit
        )


@router.get("/places/{place_id}", summary="One place · 장소 상세")
def get_place(request: Request, engine: Db, place_id: Id) -> dict[str, Any]:
    share(request, PLACES)
    with engine.begin() as conn:
        return places.get_place(conn, place_id)


@router.post("/places", response_model=PlacesSaved, summary="Save places · 장소 등록·갱신")
def save_places(body: PlacesIn, who: Editor, engine: Db) -> dict[str, int]:
    """Insert or update places by (kind, ref). Admins, operators and district officials
    (inside their own area) may write.

    A place given without `area_code` takes the dong (else district) of the loaded city pack that
    holds its point. A monitoring place (an air, weather or tide station, a gauge, a dam) gets its
    Thing and one Datastream per property it measures, in its district, exactly as a city pack's
    stations do, so its readings warn as theirs do."""
    with engine.begin() as conn:
        rows = [_located(conn, p.model_dump()) for p in body.places]
        for i, row in enumerate(rows):
            ensure_in_own_area(who, row["area_code"], f"body.places.{i}.area_code")
        first_use = {p.area_code: i for i, p in reversed(list(enumerate(body.places)))}
        for code, i in first_use.items():
            ensure_area_exists(conn, code, f"body.places.{i}.area_code")
        saved = places.save_places(conn, rows)
        settle_places(conn, places.ids_of(conn, [(r["kind"], r["ref"]) for r in rows]).values())
    return {"saved": saved}


def _located(conn, row: dict[str, Any]) -> dict[str, Any]:
    if row["area_code"] is None:
        district, dong = locate(conn, row["lon"], row["lat"]) or (None, None)
        row["area_code"] = dong or district
    return row
