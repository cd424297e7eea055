"""Golden-time coverage: which roads a fire engine reaches from a station within the target time.

One multi-source Dijkstra from every station, cut off at the golden time, marks the covered road
nodes; one cut-off Dijkstra per station gives its isochrone (the concave hull of the nodes it
reaches). A district's population is spread evenly over its road nodes (people live along streets;
the graph is the only fine-grained spatial layer we have, statistics are per district), so its
covered share is the share of its nodes covered. Uncovered nodes are gathered into grid cells
(``COVERAGE_CELL_DEG``) and merged into the "not covered" map layer.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import mapping, shape
from sqlalchemy import Connection

from haechi.store import areas, places

from .graph import RoadGraph
from .service import Network

GOLDEN_TIME_TOML = Path(__file__).parents[1] / "response" / "data" / "response.toml"
COVERAGE_CELL_DEG = 0.004  # ~350-440 m cells for the uncovered layer: a block, fine enough for a city map
ISOCHRONE_DIRECTIONS = 72  # 5° sectors: smooth enough on a city map, cheap enough for 150 stations


@cache
def golden_time() -> tuple[float, str]:
    """Seconds and source of the fire golden time (read from the response capability's data file)."""
    with open(GOLDEN_TIME_TOML, "rb") as f:
        golden = tomllib.load(f)["golden_time"]
    return float(golden["fire_min"]) * 60, golden["source"]


@dataclass
class Station:
    place_id: int
    name_ko: str
    name_en: str | None
    lon: float
    lat: float


def load_stations(conn: Connection) -> list[Station]:
    return [Station(p["id"], p["name_ko"], p.get("name_en"), p["lon"], p["lat"])
            for p in places.list_places(conn, "fire_station") if p.get("lon") is not None and p.get("lat") is not None]


def reached(net: Network, stations: list[Station], limit_s: float) -> np.ndarray:
    """Seconds from the nearest station to every node (inf beyond ``limit_s``)."""
    if not stations:
        return np.full(net.graph.node_count, np.inf)
    nodes, _ = net.graph.nearest_nodes([(s.lon, s.lat) for s in stations])
    return dijkstra(net.router.matrix, indices=nodes, min_only=True, limit=limit_s)


def isochrones(net: Network, stations: list[Station], limit_s: float) -> list[dict[str, Any]]:
    """One GeoJSON feature per station: the outline of the road nodes its engines reach within ``limit_s``."""
    g = net.graph
    nodes, _ = g.nearest_nodes([(s.lon, s.lat) for s in stations]) if stations else (np.array([], int), None)
    features = []
    for station, node in zip(stations, nodes, strict=True):
        inside, _ = net.router.within(int(node), limit_s)
        features.append({"type": "Feature", "geometry": mapping(outline(g, int(node), inside)), "properties": {
            "layer": "isochrone", "place_id": station.place_id, "name_ko": station.name_ko,
            "name_en": station.name_en, "seconds": limit_s, "nodes_reached": len(inside)}})
    return features


def outline(graph: RoadGraph, centre: int, reached_nodes: np.ndarray,
            directions: int = ISOCHRONE_DIRECTIONS) -> shapely.Geometry:
    """Star-shaped outline: the farthest reached node in each of ``directions`` sectors around the
    station, joined in angle order (a simple polygon; it follows closures and rivers, unlike a hull)."""
    lon0, lat0 = float(graph.lon[centre]), float(graph.lat[centre])
    dx = (graph.lon[reached_nodes] - lon0) * np.cos(np.radians(lat0))
    dy = graph.lat[reached_nodes] - lat0
    angle, radius = np.arctan2(dy, dx), np.hypot(dx, dy)
    sector = ((angle + np.pi) / (2 * np.pi) * directions).astype(int) % directions
    order = np.lexsort((radius, sector))
    last = np.flatnonzero(np.r_[sector[order][1:] != sector[order][:-1], True])
    far = order[last]
    far = far[radius[far] > 0]
    if len(far) < 3:
        return shapely.Point(lon0, lat0).buffer(0.0005)  # reached almost nothing: a dot on the map
    far = far[np.argsort(angle[far])]
    ring = np.column_stack([graph.lon[reached_nodes[far]], graph.lat[reached_nodes[far]]])
    return shapely.Polygon(ring)


_district_cache: dict[tuple, tuple[list[dict[str, Any]], np.ndarray]] = {}


def node_districts(conn: Connection, graph: RoadGraph) -> tuple[list[dict[str, Any]], np.ndarray]:
    """The districts and, per node, the index of the district it lies in (-1 outside all)."""
    districts = areas.list_areas(conn, level="district")
    key = (id(graph), tuple(d["code"] for d in districts))
    if key in _district_cache:
        return _district_cache[key]
    owner = np.full(graph.node_count, -1)
    for i, district in enumerate(districts):
        boundary = shape(areas.get_area(conn, district["code"])["geometry"])
        shapely.prepare(boundary)
        w, s, e, n = boundary.bounds
        idx = np.flatnonzero((owner < 0) & (graph.lon >= w) & (graph.lon <= e) & (graph.lat >= s) & (graph.lat <= n))
        owner[idx[shapely.contains_xy(boundary, graph.lon[idx], graph.lat[idx])]] = i
    _district_cache.clear()
    _district_cache[key] = (districts, owner)
    return districts, owner


def district_shares(conn: Connection, graph: RoadGraph, covered: np.ndarray) -> list[dict[str, Any]]:
    """Per district: population (area_statistics), road nodes, covered share and people not covered.

    A district the road data does not describe gets no share (``None`` and a note), never one
    measured on the few nodes at its edge: see :func:`undescribed`."""
    districts, owner = node_districts(conn, graph)
    nodes = np.bincount(owner[owner >= 0], minlength=len(districts))
    missing = undescribed(graph, districts, nodes)
    rows = []
    for i, district in enumerate(districts):
        mine = owner == i
        share = None if district["code"] in missing else float(covered[mine].mean())
        stats = areas.statistics(conn, district["code"])
        population = stats.get("population", {}).get("value")
        rows.append({
            "code": district["code"], "name_ko": district["name_ko"], "name_en": district["name_en"],
            "population": population, "road_nodes": int(nodes[i]),
            "covered_share": None if share is None else round(share, 4),
            "people_not_covered": None if share is None or population is None else round(population * (1 - share)),
        } | ({"note": missing[district["code"]]} if district["code"] in missing else {}))
    return rows


#: A district with under this share of the city's median road-node density is not described by the
#: road data. A cut that leaves a district out still has the nodes on its border (Gangdong-gu keeps
#: 10 in the Seoul node-link cut, 0.4 per km² against a median of ~12): a share measured on them
#: would call the district covered.
SPARSE_DENSITY_SHARE = 0.1


def undescribed(graph: RoadGraph, districts: list[dict[str, Any]], nodes: np.ndarray) -> dict[str, str]:
    """District code → why it has no covered share: left out of the road data, or almost no roads."""
    known_missing = {c[:5] for c in graph.meta.get("missing_districts", [])}
    area = np.array([d.get("area_km2") or np.nan for d in districts], float)
    density = nodes / area
    median = float(np.nanmedian(density[nodes > 0])) if (nodes > 0).any() else 0.0
    out = {}
    for i, district in enumerate(districts):
        if district["code"][:5] in known_missing:
            out[district["code"]] = graph.meta.get("note") or "the road data leaves this district out"
        elif nodes[i] == 0:
            out[district["code"]] = "no road node of the graph lies in this district"
        elif np.isfinite(density[i]) and density[i] < SPARSE_DENSITY_SHARE * median:
            out[district["code"]] = (f"only {nodes[i]} road nodes ({density[i]:.1f}/km², city median {median:.1f}): "
                                     "the road data does not describe this district")
    return out


def uncovered_cells(graph: RoadGraph, covered: np.ndarray, cell_deg: float = COVERAGE_CELL_DEG) -> dict[str, Any]:
    """The places not reached in time, as one GeoJSON feature (merged grid cells of uncovered nodes)."""
    idx = np.flatnonzero(~covered)
    if len(idx) == 0:
        return {"type": "Feature", "geometry": None, "properties": {"layer": "not_covered", "road_nodes": 0}}
    cells = np.unique(np.column_stack([np.floor(graph.lon[idx] / cell_deg), np.floor(graph.lat[idx] / cell_deg)]),
                      axis=0)
    boxes = shapely.box(cells[:, 0] * cell_deg, cells[:, 1] * cell_deg,
                        (cells[:, 0] + 1) * cell_deg, (cells[:, 1] + 1) * cell_deg)
    merged = shapely.coverage_union_all(boxes)
    return {"type": "Feature", "geometry": mapping(merged), "properties": {
        "layer": "not_covered", "road_nodes": len(idx), "cells": len(cells), "cell_deg": cell_deg}}


def coverage(conn: Connection, net: Network, *, with_isochrones: bool = True) -> dict[str, Any]:
    """Golden-time coverage report: GeoJSON layers (isochrones, not covered) and per-district shares."""
    limit_s, source = golden_time()
    stations = load_stations(conn)
    seconds = reached(net, stations, limit_s)
    covered = np.isfinite(seconds) & (seconds <= limit_s)
    layers = isochrones(net, stations, limit_s) if with_isochrones else []
    layers.append(uncovered_cells(net.graph, covered))
    return {
        "type": "FeatureCollection", "features": layers,
        "golden_time_s": limit_s, "golden_time_source": source,
        "stations": len(stations), "road_nodes": net.graph.node_count,
        "covered_share": round(float(covered.mean()), 4) if net.graph.node_count else None,
        "districts": district_shares(conn, net.graph, covered),
        "synthetic_graph": net.graph.synthetic, "graph_source": net.graph.meta.get("source"),
        "method": "population spread evenly over each district's road nodes; a node is covered when "
                  "the nearest station reaches it by road within the golden time, closures applied",
    }
