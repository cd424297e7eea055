"""Roads: routes, evacuation to shelters with room, golden-time coverage, road closures (issue 9).

Every answer says whether the road graph is synthetic (the generated demo grid) or real. Without a
graph, every endpoint answers 409 naming the commands that load one (``haechi roads import FILE``).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
import numpy as np
import shapely
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field
from shapely.geometry import Polygon

from haechi.cities import resolve
from haechi.cities.pack import basemap_features, read_manifest
from haechi.cities.targeting import area_facts
from haechi.core.errors import HaechiError, InvalidInput, NotFound
from haechi.model.access import Role
from haechi.roads import coverage as coverage_mod
from haechi.roads import evacuation as evac
from haechi.roads import hazards
from haechi.roads.layer import MAJOR_MAX_RANK, road_features
from haechi.roads.service import Network, NoRoadGraph, load_graph, network
from haechi.store import warnings as warning_store
from haechi.store.access import Principal

from .auth import Authenticated, require
from .common import API_PREFIX, MAX_INTEGER, Db, Id, Lat, Lon, RequestBody, kept_if_refused
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["roads"], responses=PROBLEM_RESPONSES)

Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
LON_LAT = r"^\s*-?\d+(\.\d+)?\s*,\s*-?\d+(\.\d+)?\s*$"
LonLatText = Annotated[str, Query(max_length=64, pattern=LON_LAT, examples=["126.978,37.5665"],
                                  description="lon,lat (WGS84) · 경도,위도")]


def parse_point(text: str, field: str) -> tuple[float, float]:
    lon, lat = (float(v) for v in text.split(","))
    if not (-180 <= lon <= 180 and -90 <= lat <= 90):
        raise InvalidInput(f"{text} is not a lon,lat position", field=field)
    return lon, lat


def current(request: Request, engine) -> Network:
    with engine.connect() as conn:
        return network(conn, request.app.state.settings)


def line_feature(net: Network, nodes: np.ndarray, properties: dict[str, Any]) -> dict[str, Any]:
    g = net.graph
    coords = [[round(float(g.lon[v]), 6), round(float(g.lat[v]), 6)] for v in nodes]
    geometry = {"type": "LineString", "coordinates": coords} if len(coords) >= 2 else (
        {"type": "Point", "coordinates": coords[0]} if coords else None)
    return {"type": "Feature", "geometry": geometry, "properties": properties | _labels(net)}


def _labels(net: Network) -> dict[str, Any]:
    return {"synthetic_graph": net.graph.synthetic, "graph_source": net.graph.meta.get("source"),
            "hazard_areas_in_force": len(net.zones)}


@router.get("/roads", summary="The road graph in use · 도로망 정보")
def road_graph(request: Request, who: Authenticated, engine: Db) -> dict[str, Any]:
    net = current(request, engine)
    return {"nodes": net.graph.node_count, "arcs": net.graph.arc_count,
            "closed_arcs": int(np.isinf(net.seconds).sum()), **_labels(net)}


@router.get("/basemap", summary="Roads and water under the map · 기본도 (도로·한강)")
def basemap(request: Request, max_rank: Annotated[int, Query(
        ge=101, le=108, description="Draw road ranks 101 (expressway) up to this one (standard node-link codes; "
                                    "OSM classes count as their equivalent rank)")] = MAJOR_MAX_RANK) -> dict[str, Any]:
    """The map's backdrop, drawn under the districts without a tile server: the city pack's water
    (the Han River) and the major roads of the road graph in use, merged and simplified. Public,
    like the district boundaries. Without a road graph the roads are simply absent (``roads: 0``)."""
    settings = request.app.state.settings
    try:
        folder = resolve(settings.city)
        water = basemap_features(folder, read_manifest(folder))
    except NotFound:
        water = []
    try:
        graph, _ = load_graph(settings.road_graph)
    except NoRoadGraph:
        graph = None
    roads = road_features(graph, max_rank) if graph is not None else []
    meta = graph.meta if graph is not None else {}
    attribution = [f["properties"]["attribution"] for f in water[:1]]
    if graph is not None:
        attribution.append(meta.get("attribution") or f"도로 · roads: {meta.get('source')}")
    return {"type": "FeatureCollection", "features": [*water, *roads], "roads": len(roads),
            "synthetic_graph": bool(meta.get("synthetic")), "attribution": attribution,
            "note": meta.get("note"), "missing_districts": meta.get("missing_districts", [])}


@router.get("/routes", summary="Fastest route by road · 최단시간 경로")
def route(request: Request, who: Authenticated, engine: Db,
          from_: Annotated[str, Query(alias="from", max_length=64, pattern=LON_LAT, examples=["126.978,37.5665"],
                                      description="lon,lat (WGS84) · 경도,위도")],
          to: LonLatText) -> dict[str, Any]:
    """GeoJSON LineString of the fastest road route now (closed roads avoided, slowed roads slower)."""
    origin, destination = parse_point(from_, "query.from"), parse_point(to, "query.to")
    net = current(request, engine)
    found = net.route(origin, destination)
    if found["seconds"] is None:
        raise NoRoute("no route: closed roads cut the destination off from the origin · 통제로 경로 없음")
    metres = _path_metres(net, found["nodes"])
    return line_feature(net, found["nodes"], {"seconds": round(found["seconds"], 1), "metres": round(metres, 1)})


class NoRoute(HaechiError):
    status = 404
    title = "No route"


def _path_metres(net: Network, nodes: np.ndarray) -> float:
    if len(nodes) < 2:
        return 0.0
    return float(np.asarray(net.metres_matrix[nodes[:-1], nodes[1:]]).ravel().sum())


def _shelter_props(leg: dict[str, Any]) -> dict[str, Any]:
    s: evac.Shelter = leg["shelter"]
    return {"shelter": {"place_id": s.place_id, "name_ko": s.name_ko, "name_en": s.name_en, "lon": s.lon,
                        "lat": s.lat, "capacity": s.capacity, "evacuees": s.evacuees, "room": s.room},
            "seconds": round(leg["seconds"], 1), "leaves_hazard_area": leg["through_hazard"]}


@router.get("/evacuation", summary="Route to the nearest shelter with room · 대피소 경로")
def evacuation(request: Request, engine: Db, at: LonLatText) -> dict[str, Any]:
    """From ``at`` to the nearest shelter that still has room, avoiding hazard areas (a route starting
    inside one leaves it by the quickest way). Nothing is recorded: see POST /evacuation/assignments.

    Public, like the shelters themselves: a citizen in danger needs the way out without a token."""
    point = parse_point(at, "query.at")
    net = current(request, engine)
    with engine.connect() as conn:
        shelters = evac.load_shelters(conn)
    leg = evac.evacuate(net, shelters, point)
    return line_feature(net, leg["nodes"], _shelter_props(leg))


class AssignmentIn(RequestBody):
    lon: Lon
    lat: Lat
    people: int = Field(ge=1, le=100_000, description="Evacuees leaving from this point")


@router.post("/evacuation/assignments", status_code=201, summary="Send evacuees to shelters · 대피 인원 배정")
async def assign(request: Request, who: Staff, engine: Db) -> dict[str, Any]:
    """Fill the nearest shelter with room, then the next: loads are recorded so others spread."""
    raw = await request.body()
    net, legs = await anyio.to_thread.run_sync(_assign, request, engine, raw)  # routing: off the event loop
    features = [line_feature(net, leg["nodes"], _shelter_props(leg) | {"people": leg["people"]})
                for leg in legs if leg.get("shelter")]
    unplaced = sum(leg["people"] for leg in legs if not leg.get("shelter"))
    return {"type": "FeatureCollection", "features": features, "unplaced": unplaced}


def _assign(request: Request, engine, raw: bytes) -> tuple[Network, list[dict[str, Any]]]:
    with kept_if_refused(engine, "http:/api/v1/evacuation/assignments", raw):
        body = AssignmentIn.model_validate_json(raw)
        net = current(request, engine)
        with engine.begin() as conn:
            return net, evac.assign(conn, net, (body.lon, body.lat), body.people)


@router.delete("/evacuation/assignments", status_code=204, summary="Reset shelter loads · 대피소 인원 초기화")
def reset(who: Operator, engine: Db) -> Response:
    with engine.begin() as conn:
        evac.reset_loads(conn)
    return Response(status_code=204)


@router.get("/evacuation/plan", summary="Evacuation plan for a warned area · 경보 지역 대피 계획")
def evacuation_plan(request: Request, who: Staff, engine: Db,
                    warning: Annotated[int, Query(ge=1, le=MAX_INTEGER, description="Warning id")]) -> dict[str, Any]:
    """Every block of the warning's area to the nearest shelter with room, nearest blocks first;
    people per block are the area's affected population spread over its road nodes. A preview: no
    shelter load is recorded."""
    net = current(request, engine)
    with engine.connect() as conn:
        row = warning_store.get_warning(conn, warning)
        try:
            facts = area_facts(conn, row["area_key"], row["hazard"], row.get("datastream_id"))
        except LookupError as e:
            raise InvalidInput(f"warning {warning}'s area cannot be placed: {e}", field="query.warning") from None
        shelters = evac.load_shelters(conn)
    area = shapely.union_all([Polygon([(lon, lat) for lat, lon in ring]) for ring in facts.polygons])
    blocks = evac.blocks_in(net, area, facts.affected.get("population") or 0)
    legs = evac.plan(net, shelters, blocks)
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [leg["block"]["lon"],
                                                                                  leg["block"]["lat"]]},
                 "properties": {"people": leg["people"], "seconds": leg["seconds"] and round(leg["seconds"], 1),
                                "shelter": leg["shelter"] and {"place_id": leg["shelter"].place_id,
                                                               "name_ko": leg["shelter"].name_ko}}}
                for leg in legs]
    return {"type": "FeatureCollection", "features": features, "warning_id": warning, "area": facts.name_en,
            "people": sum(b["people"] for b in blocks), "blocks": len(blocks),
            "unplaced": sum(leg["people"] for leg in legs if leg["shelter"] is None),
            "method": "area population (district statistics × share inside) spread evenly over its road nodes",
            **_labels(net)}


@router.get("/coverage", summary="Golden-time coverage of fire stations · 골든타임 커버리지")
def coverage(request: Request, who: Staff, engine: Db,
             isochrones: Annotated[bool, Query(description="Include each station's isochrone")] = True
             ) -> dict[str, Any]:
    """Isochrones of every fire station for the golden time, the places not covered (map layer), and
    each district's covered population share."""
    net = current(request, engine)
    with engine.connect() as conn:
        report = coverage_mod.coverage(conn, net, with_isochrones=isochrones)
    return report | {"hazard_areas_in_force": len(net.zones)}


@router.get("/roads/hazards", summary="Hazard areas affecting roads now · 도로 통제 구역")
def hazard_areas(request: Request, who: Authenticated, engine: Db) -> dict[str, Any]:
    with engine.connect() as conn:
        zones = hazards.active_zones(conn)
    return {"type": "FeatureCollection", "features": [z.feature() for z in zones]}


class ClosureIn(RequestBody):
    reason: str = Field(min_length=1, max_length=300)
    effect: str = Field("closed", pattern="^(closed|slowed)$")
    speed_factor: float | None = Field(None, gt=0, lt=1)
    geometry: dict[str, Any] = Field(description="GeoJSON Polygon or MultiPolygon (lon/lat)")


@router.get("/roads/closures", summary="Road closures in force · 도로 통제 목록")
def list_closures(who: Authenticated, engine: Db) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return hazards.list_closures(conn)


@router.post("/roads/closures", status_code=201, summary="Close or slow roads in an area · 도로 통제")
async def add_closure(request: Request, who: Operator, engine: Db, response: Response) -> dict[str, Any]:
    raw = await request.body()
    row = await anyio.to_thread.run_sync(_add_closure, engine, raw, who.name)
    response.headers["Location"] = f"{API_PREFIX}/roads/closures/{row['id']}"
    return row


def _add_closure(engine, raw: bytes, actor: str) -> dict[str, Any]:
    with kept_if_refused(engine, "http:/api/v1/roads/closures", raw):
        body = ClosureIn.model_validate_json(raw)
        with engine.begin() as conn:
            return hazards.add_closure(conn, body.reason, body.geometry, body.effect, body.speed_factor, actor)


@router.delete("/roads/closures/{closure_id}", status_code=204, summary="Lift a road closure · 도로 통제 해제")
def lift_closure(who: Operator, engine: Db, closure_id: Id) -> Response:
    with engine.begin() as conn:
        hazards.lift_closure(conn, closure_id)
    return Response(status_code=204)


