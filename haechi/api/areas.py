"""Administrative areas (city → district 자치구 → dong) with their statistics and boundaries."""

from __future__ import annotations

from typing import Annotated, Any

import shapely
from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse
from pydantic import Field, model_validator
from shapely.geometry import mapping, shape

from haechi.core.errors import NotFound
from haechi.model.city import AreaLevel
from haechi.store import areas, places
from haechi.store import warnings as warning_store

from .common import API_PREFIX, AreaCode, Db, Lat, Lon, QueryParams, Record
from .problems import PROBLEM_RESPONSES
from .public_cache import FEED, REFERENCE, share

router = APIRouter(prefix=API_PREFIX, tags=["areas"], responses=PROBLEM_RESPONSES)

GEOJSON = "application/geo+json"


class GeoJSONResponse(JSONResponse):
    media_type = GEOJSON


class AreaFilter(QueryParams):
    level: AreaLevel | None = Field(None, description="city, district (자치구) or dong (법정동)")
    parent: AreaCode | None = Field(None, description="Only the children of this area")


class BoundaryFilter(QueryParams):
    level: AreaLevel = Field(AreaLevel.DISTRICT, description="Level of the areas to draw")
    parent: AreaCode | None = Field(None, description="Only the children of this area")


class PointQuery(QueryParams):
    lon: Lon
    lat: Lat
    level: AreaLevel = AreaLevel.DISTRICT


class AreaView(QueryParams):
    geometry: bool = Field(False, description="Include the boundary as a GeoJSON geometry")


class AreaSummary(Record):
    code: str
    level: AreaLevel
    parent_code: str | None
    name_ko: str
    name_en: str | None
    area_km2: float | None = Field(description="Land area in km²")
    bbox: list[float] | None = Field(description="[west, south, east, north] in WGS84 degrees")
    source: str | None

    @model_validator(mode="before")
    @classmethod
    def _bbox_from_columns(cls, row: Any) -> Any:
        if isinstance(row, dict) and "bbox" not in row:
            box = [row.get(k) for k in ("min_lon", "min_lat", "max_lon", "max_lat")]
            row = {**row, "bbox": None if None in box else box}
        return row


class Statistic(Record):
    """One indicator of an area: its value (persons or households unless named), year and source."""

    value: float
    year: int
    source: str | None


class AreaDetail(AreaSummary):
    statistics: dict[str, Statistic] = Field(
        description="The latest year of each indicator loaded (population, age_65_plus …)"
    )
    geometry: dict[str, Any] | None = Field(None, description="GeoJSON geometry, when asked for")


@router.get("/areas", response_model=list[AreaSummary], summary="List areas · 행정구역 목록")
def list_areas(request: Request, engine: Db, q: Annotated[AreaFilter, Query()]) -> list[dict[str, Any]]:
    """Areas ordered by code, without boundaries (use `areas.geojson` for those)."""
    share(request, REFERENCE)
    with engine.begin() as conn:
        return areas.list_areas(conn, level=q.level, parent=q.parent)


@router.get(
    "/areas.geojson",
    response_class=GeoJSONResponse,
    summary="Area boundaries as GeoJSON · 행정구역 경계 (GeoJSON)",
    responses={200: {"content": {GEOJSON: {}}, "description": "An RFC 7946 FeatureCollection"}},
)
def areas_geojson(request: Request, engine: Db, q: Annotated[BoundaryFilter, Query()]) -> GeoJSONResponse:
    """An RFC 7946 FeatureCollection: one Feature per area, its code as the Feature id."""
    share(request, REFERENCE)
    with engine.begin() as conn:
        rows = areas.list_areas(conn, level=q.level, parent=q.parent, geometry=True)
    features = [area_feature(row) for row in rows]
    return GeoJSONResponse({"type": "FeatureCollection", "features": features})


def area_feature(row: dict[str, Any]) -> dict[str, Any]:
    """One area as a GeoJSON Feature; polygons wound as RFC 7946 asks (exterior anticlockwise)."""
    summary = AreaSummary.model_validate(row).model_dump(mode="json")
    feature: dict[str, Any] = {
        "type": "Feature",
        "id": row["code"],
        "geometry": rfc7946_geometry(row.get("geometry")),
        "properties": {k: v for k, v in summary.items() if k != "bbox"},
    }
    if summary["bbox"]:
        feature["bbox"] = summary["bbox"]
    return feature


def rfc7946_geometry(geometry: dict[str, Any] | None) -> dict[str, Any] | None:
    if not geometry:
        return None
    oriented = shapely.orient_polygons(shape(geometry), exterior_cw=False)
    return mapping(oriented)


@router.get(
    "/areas/at",
    response_model=AreaSummary,
    summary="Area containing a point · 좌표가 속한 행정구역",
)
def area_at(request: Request, engine: Db, q: Annotated[PointQuery, Query()]) -> dict[str, Any]:
    """The area of `level` whose boundary covers (lon, lat); 404 when none does."""
    share(request, REFERENCE)
    with engine.begin() as conn:
        found = areas.area_at(conn, q.lon, q.lat, q.level)
    if found is None:
        raise NotFound(f"no loaded {q.level} area contains lon {q.lon}, lat {q.lat}")
    return found


@router.get("/areas/{code}/summary", summary="District summary · 지역 현황")
def area_summary(
    request: Request,
    engine: Db,
    code: Annotated[str, Path(pattern=r"^\d{2,10}$", description="행정표준코드, e.g. 11680")],
) -> dict[str, Any]:
    """The situation room's district panel: people (latest statistics), shelters and their
    capacity, places by kind, facilities graded D or E, and the warnings in force there."""
    share(request, FEED)  # the warnings in force: dropped when one changes (places: within the same bound)
    with engine.begin() as conn:
        area = areas.get_area(conn, code, geometry=False)
        summary = places.area_summary(conn, code)
        in_force = warning_store.list_warnings(conn, active_only=True, area_code=code, limit=100)
        stats = areas.statistics(conn, code)
    return {**area, "statistics": stats, **summary,
            "warnings": [{k: w[k] for k in ("id", "hazard", "level", "crisis_level", "value", "unit")}
                         | {"issued_at": w["issued_at"].isoformat()} for w in in_force if not w["exercise"]]}


@router.get("/areas/{code}", response_model=AreaDetail, summary="One area · 행정구역 상세")
def get_area(
    request: Request,
    engine: Db,
    code: Annotated[str, Path(pattern=r"^\d{2,10}$", description="행정표준코드, e.g. 11680")],
    q: Annotated[AreaView, Query()],
) -> dict[str, Any]:
    """One area with the latest year of each statistic embedded (population, 65+, households …)."""
    share(request, REFERENCE)
    with engine.begin() as conn:
        area = areas.get_area(conn, code, geometry=q.geometry)
        area["statistics"] = areas.statistics(conn, code)
    return area
