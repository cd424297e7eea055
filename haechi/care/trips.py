"""Safe return home (안심귀가, service 18): deviation, long stops, overdue, arrival — pure checks.

Distances are in metres in Korea 2000 / UTM-K (EPSG:5179), as elsewhere in Haechi.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from shapely.geometry import LineString, Point, shape
from shapely.geometry.base import BaseGeometry

from haechi.model.geo import TO_METRES, transform


def route_line(geojson: dict[str, Any]) -> LineString:
    """A planned route from GeoJSON; ValueError names what is wrong."""
    try:
        line = shape(geojson)
    except Exception as exc:  # noqa: BLE001 - shapely raises many kinds for bad GeoJSON
        raise ValueError(f"route is not GeoJSON: {exc}") from None
    if line.geom_type != "LineString" or len(line.coords) < 2:
        raise ValueError("route must be a GeoJSON LineString of at least two points")
    if any(not (-180 <= x <= 180 and -90 <= y <= 90) for x, y in line.coords):
        raise ValueError("route coordinates must be WGS84 lon/lat")
    return line


@dataclass
class TripWatch:
    """One active trip and what has been seen of it."""

    trip_id: int
    ward_id: int
    route: LineString  # degrees
    expected_at: datetime
    started_at: datetime | None = None  # positions from then on are the trip's (replayed by a new leader)
    route_m: BaseGeometry = field(init=False)
    home_m: Point = field(init=False)
    stop_at: tuple[float, float] | None = None  # metres
    stop_since: datetime | None = None
    deviated: bool = False
    stop_alerted: bool = False
    overdue_alerted: bool = False

    def __post_init__(self) -> None:
        self.route_m = transform(TO_METRES, self.route)
        self.home_m = Point(self.route_m.coords[-1])


@dataclass(frozen=True, slots=True)
class TripRules:
    route_buffer_m: float
    stop_s: float
    overdue_grace_s: float
    arrival_radius_m: float


def check_position(watch: TripWatch, rules: TripRules, lon: float, lat: float,
                   at: datetime) -> list[tuple[str, dict[str, Any]]]:
    """What one position means for the trip: ``arrived``, ``deviation``, ``long_stop`` (each once)."""
    here = transform(TO_METRES, Point(lon, lat))
    if here.distance(watch.home_m) <= rules.arrival_radius_m:
        return [("arrived", {})]
    found = []
    off_route = here.distance(watch.route_m)
    if off_route > rules.route_buffer_m and not watch.deviated:
        found.append(("deviation", {"off_route_m": round(off_route), "buffer_m": rules.route_buffer_m}))
    watch.deviated = off_route > rules.route_buffer_m
    if watch.stop_at is None or Point(watch.stop_at).distance(here) > rules.arrival_radius_m:
        watch.stop_at, watch.stop_since, watch.stop_alerted = (here.x, here.y), at, False
    elif (at - watch.stop_since).total_seconds() >= rules.stop_s and not watch.stop_alerted:
        watch.stop_alerted = True
        found.append(("long_stop", {"minutes": round((at - watch.stop_since).total_seconds() / 60)}))
    return found


def is_overdue(watch: TripWatch, rules: TripRules, now: datetime) -> bool:
    """True once, when the trip passes its expected arrival plus the grace period."""
    if watch.overdue_alerted or now < watch.expected_at + timedelta(seconds=rules.overdue_grace_s):
        return False
    watch.overdue_alerted = True
    return True
