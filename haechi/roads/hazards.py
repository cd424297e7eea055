"""Hazard areas on the road graph: active warnings and explicit closures close or slow roads.

A road (arc) is affected when either end or its midpoint lies inside an area. Closed arcs get an
infinite weight; slowed arcs take ``1 / speed_factor`` times as long. What each hazard does, and why,
is in ``data/hazard_effects.toml``. The areas are re-read from the DB on every query (their
signature is cheap to read), so routes change the moment a warning or closure does.
"""

from __future__ import annotations

import logging
import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from shapely.geometry import Polygon, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, insert, select, update

from haechi.cities.targeting import area_facts
from haechi.core.clock import utcnow
from haechi.core.errors import InvalidInput, NotFound
from haechi.store.schema import road_closures, warnings

from .graph import RoadGraph

log = logging.getLogger(__name__)
EFFECTS_TOML = Path(__file__).with_name("data") / "hazard_effects.toml"


@cache
def effects() -> dict[str, dict[str, Any]]:
    with open(EFFECTS_TOML, "rb") as f:
        return tomllib.load(f)


def evacuation_penalty() -> float:
    return float(effects()["evacuation"]["inside_penalty"])


@dataclass(frozen=True)
class Zone:
    """One hazard area and what it does to roads."""

    source: str  # warning · closure
    ref: int
    label: str
    effect: str  # closed · slowed
    speed_factor: float
    geometry: BaseGeometry

    def feature(self) -> dict[str, Any]:
        return {"type": "Feature", "geometry": shapely.geometry.mapping(self.geometry), "properties": {
            "source": self.source, "id": self.ref, "label": self.label, "effect": self.effect,
            "speed_factor": self.speed_factor}}


def signature(conn: Connection) -> tuple:
    """What the zones depend on; when it is unchanged the zones are too."""
    w = conn.execute(select(warnings.c.id, warnings.c.updated_at).where(
        warnings.c.status == "active", warnings.c.exercise.is_(False),
        warnings.c.hazard.in_([h for h in effects() if h != "evacuation"])).order_by(warnings.c.id)).all()
    c = conn.execute(select(road_closures.c.id).where(road_closures.c.lifted_at.is_(None))
                     .order_by(road_closures.c.id)).all()
    return tuple((i, str(t)) for i, t in w), tuple(i for (i,) in c)


def active_zones(conn: Connection) -> list[Zone]:
    """Areas of active (non-exercise) warnings whose hazard affects roads, and unlifted closures."""
    zones = []
    rows = conn.execute(select(warnings).where(
        warnings.c.status == "active", warnings.c.exercise.is_(False)).order_by(warnings.c.id)).all()
    for row in rows:
        rule = effects().get(row.hazard)
        if rule is None or row.hazard == "evacuation":
            continue
        try:
            facts = area_facts(conn, row.area_key, row.hazard, row.datastream_id)
        except (LookupError, NotFound) as e:  # an area we cannot place closes nothing; say so
            log.warning("warning %s: cannot place area %s: %s", row.id, row.area_key, e)
            continue
        rings = [Polygon([(lon, lat) for lat, lon in ring]) for ring in facts.polygons]
        if rings:
            zones.append(Zone("warning", row.id, f"{row.hazard} {row.level}: {facts.name_en}", rule["effect"],
                              float(rule.get("speed_factor", 1.0)), shapely.union_all(rings)))
    for row in conn.execute(select(road_closures).where(road_closures.c.lifted_at.is_(None))
                            .order_by(road_closures.c.id)):
        zones.append(Zone("closure", row.id, row.reason, row.effect, row.speed_factor or 1.0,
                          shape(row.geometry)))
    return zones


def affected_arcs(graph: RoadGraph, geometry: BaseGeometry) -> np.ndarray:
    """bool[m]: arcs with an end or their midpoint inside ``geometry``."""
    w, s, e, n = geometry.bounds
    near = (graph.lon >= w) & (graph.lon <= e) & (graph.lat >= s) & (graph.lat <= n)
    inside = np.zeros(graph.node_count, bool)
    idx = np.flatnonzero(near)
    shapely.prepare(geometry)
    inside[idx] = shapely.contains_xy(geometry, graph.lon[idx], graph.lat[idx])
    hit = inside[graph.tail] | inside[graph.head]
    candidates = np.flatnonzero(~hit & (near[graph.tail] | near[graph.head]))
    mid_lon = (graph.lon[graph.tail[candidates]] + graph.lon[graph.head[candidates]]) / 2
    mid_lat = (graph.lat[graph.tail[candidates]] + graph.lat[graph.head[candidates]]) / 2
    hit[candidates] = shapely.contains_xy(geometry, mid_lon, mid_lat)
    return hit


def arc_weights(graph: RoadGraph, zones: list[Zone]) -> tuple[np.ndarray, np.ndarray]:
    """(seconds with closures as inf and slowdowns applied, bool[m] arcs inside any zone)."""
    seconds = graph.seconds.copy()
    inside = np.zeros(graph.arc_count, bool)
    for zone in zones:
        hit = affected_arcs(graph, zone.geometry)
        inside |= hit
        if zone.effect == "closed":
            seconds[hit] = np.inf
        else:
            seconds[hit] = np.maximum(seconds[hit], graph.seconds[hit] / zone.speed_factor)
    return seconds, inside


# ── explicit closures ─────────────────────────────────────────────────────────────────────

def validate_polygon(geometry: Any) -> BaseGeometry:
    if not isinstance(geometry, dict) or geometry.get("type") not in ("Polygon", "MultiPolygon"):
        raise InvalidInput("geometry must be a GeoJSON Polygon or MultiPolygon", field="geometry")
    try:
        polygon = shape(geometry)
    except (ValueError, TypeError, IndexError, AttributeError) as e:
        raise InvalidInput(f"geometry is not valid GeoJSON: {e}", field="geometry") from None
    w, s, e, n = polygon.bounds if not polygon.is_empty else (0, 0, 999, 999)
    if polygon.is_empty or not polygon.is_valid or w < -180 or e > 180 or s < -90 or n > 90:
        raise InvalidInput("geometry must be a valid, non-empty lon/lat polygon", field="geometry")
    return polygon


def add_closure(conn: Connection, reason: str, geometry: dict[str, Any], effect: str = "closed",
                speed_factor: float | None = None, created_by: str | None = None) -> dict[str, Any]:
    validate_polygon(geometry)
    if effect not in ("closed", "slowed"):
        raise InvalidInput("effect must be 'closed' or 'slowed'", field="effect")
    if effect == "slowed" and not (speed_factor and 0 < speed_factor < 1):
        raise InvalidInput("a slowed road needs 0 < speed_factor < 1", field="speed_factor")
    row = {"reason": reason, "effect": effect, "speed_factor": speed_factor if effect == "slowed" else None,
           "geometry": geometry, "created_by": created_by, "created_at": utcnow()}
    row["id"] = conn.execute(insert(road_closures).values(**row)).inserted_primary_key[0]
    return row | {"lifted_at": None}


def lift_closure(conn: Connection, closure_id: int) -> None:
    done = conn.execute(update(road_closures).where(
        road_closures.c.id == closure_id, road_closures.c.lifted_at.is_(None)).values(lifted_at=utcnow()))
    if done.rowcount == 0:
        raise NotFound(f"no active road closure {closure_id}")


def list_closures(conn: Connection, *, active_only: bool = True) -> list[dict[str, Any]]:
    query = select(road_closures).order_by(road_closures.c.id)
    if active_only:
        query = query.where(road_closures.c.lifted_at.is_(None))
    return [dict(r._mapping) for r in conn.execute(query)]
