"""Where a warning applies and who lives there: the CAP area and the people and places inside it.

A district-wide warning covers the district's boundary and its dongs; a city-wide one (area key
``city:11``) covers every district and dong of the city. A point hazard (a river gauge, a facility,
a crowd zone) covers a buffer around it (``targeting.toml``), and the districts and dongs that
buffer touches. People affected are estimated from district statistics in proportion to the
share of each district's area inside (statistics are per district; dongs have none yet).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import shapely
from pyproj import Transformer
from shapely import simplify
from shapely.geometry import Point, mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, select

from haechi.store import areas, places
from haechi.store.schema import admin_areas, datastreams, things

TO_METRES = Transformer.from_crs("EPSG:4326", "EPSG:5179", always_xy=True)  # Korea 2000 / UTM-K: metric work
TO_DEGREES = Transformer.from_crs("EPSG:5179", "EPSG:4326", always_xy=True)


def transform(transformer: Transformer, geometry: BaseGeometry) -> BaseGeometry:
    """``geometry`` in the transformer's target coordinates."""
    return shapely.transform(geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))
PEOPLE = ("population", "age_65_plus", "under_15", "foreigners")


@cache
def buffers() -> dict[str, float]:
    with open(Path(__file__).with_name("targeting.toml"), "rb") as f:
        return tomllib.load(f)["buffer_m"]


@dataclass
class AreaFacts:
    """An alert's area: names, administrative codes, shape, and what lies inside."""

    key: str
    name_ko: str
    name_en: str
    area_code: str | None  # the district it belongs to, for lists and feeds
    geocodes: list[str]  # 10-digit 행정표준코드 of the districts and dongs covered
    polygons: list[list[tuple[float, float]]]  # rings of (lat, lon), as CAP wants them
    affected: dict[str, Any] = field(default_factory=dict)


def area_facts(conn: Connection, area_key: str, hazard: str, datastream_id: int | None = None) -> AreaFacts:
    kind, _, ref = area_key.partition(":")
    if kind in ("city", "district", "dong"):
        area = areas.get_area(conn, ref)
        return _facts(conn, area_key, shape(area["geometry"]), area["name_ko"], area["name_en"], _within(conn, ref))
    lon, lat, name_ko, name_en = _anchor(conn, kind, ref, datastream_id)
    radius = buffers().get(hazard, buffers()["default"])
    zone = transform(TO_DEGREES, Point(transform(TO_METRES, Point(lon, lat))).buffer(radius, quad_segs=8))
    suffix_ko, suffix_en = f" 주변 {radius / 1000:g}km", f" ({radius / 1000:g} km around)"
    return _facts(conn, area_key, zone, name_ko + suffix_ko, name_en + suffix_en)


def _within(conn: Connection, code: str) -> list[tuple[dict[str, Any], float]]:
    """The districts and dongs an administrative area holds, itself included, each wholly covered.

    Codes nest by prefix (11 Seoul ⊃ 11140 Jung-gu ⊃ 11140101 a dong), so a city-wide warning (a
    PM10 advisory Seoul issues on its 25-district mean) reaches every district of the loaded pack.
    """
    c = admin_areas.c
    rows = conn.execute(select(*areas.SUMMARY_COLUMNS).where(
        c.level.in_(("district", "dong")), c.code.startswith(code, autoescape=True)).order_by(c.code))
    return [(dict(row._mapping), 1.0) for row in rows]


def _anchor(conn: Connection, kind: str, ref: str, datastream_id: int | None) -> tuple[float, float, str, str]:
    """Where a point hazard is, and its name."""
    if kind == "gauge":
        [gauge] = [p for p in places.list_places(conn, "river_gauge") if p["ref"] == ref] or [None]
        if gauge is not None:
            return gauge["lon"], gauge["lat"], gauge["name_ko"], gauge["name_en"] or gauge["name_ko"]
    thing_id = int(ref) if kind in ("facility", "zone") else None
    if thing_id is None and datastream_id is not None:
        thing_id = conn.execute(select(datastreams.c.thing_id).where(datastreams.c.id == datastream_id)).scalar()
    thing = conn.execute(select(things).where(things.c.id == thing_id)).first() if thing_id else None
    if thing is not None and thing.place_id is not None:
        place = places.get_place(conn, thing.place_id)
        return place["lon"], place["lat"], place["name_ko"], place["name_en"] or place["name_ko"]
    raise LookupError(f"cannot place warning area {kind}:{ref}")


def _facts(conn: Connection, key: str, zone: BaseGeometry, name_ko: str, name_en: str,
           covered: list[tuple[dict[str, Any], float]] | None = None) -> AreaFacts:
    covered = covered if covered is not None else _covered(conn, zone)
    districts = [(a, share) for a, share in covered if a["level"] == "district"]
    dongs = [a for a, _ in covered if a["level"] == "dong"]
    people = {k: 0 for k in PEOPLE}
    for district, share in districts:
        stats = areas.statistics(conn, district["code"])
        for k in PEOPLE:
            if k in stats:
                people[k] += round(stats[k]["value"] * share)
    inside = _places_inside(conn, zone)
    return AreaFacts(
        key=key, name_ko=name_ko, name_en=name_en,
        area_code=districts[0][0]["code"] if len(districts) == 1 else (districts[0][0]["parent_code"] if districts else None),
        geocodes=sorted(a["code"].ljust(10, "0") for a, _ in covered if a["level"] in ("district", "dong")),
        polygons=_cap_rings(zone),
        affected=people | {
            "districts": [d["code"] for d, _ in districts], "dongs": len(dongs),
            "facilities": sum(1 for p in inside if p["kind"] == "facility"),
            "shelters": sum(1 for p in inside if p["kind"] == "shelter"),
            "places": len(inside), "method": "district statistics × share of district area inside",
        },
    )


def _covered(conn: Connection, zone: BaseGeometry) -> list[tuple[dict[str, Any], float]]:
    """Districts and dongs the zone overlaps, each with the share of its area inside the zone."""
    w, s, e, n = zone.bounds
    c = admin_areas.c
    rows = conn.execute(select(admin_areas).where(
        c.level.in_(("district", "dong")), c.min_lon <= e, c.max_lon >= w, c.min_lat <= n, c.max_lat >= s))
    zone_m = transform(TO_METRES, zone)
    found = []
    for row in rows:
        boundary = transform(TO_METRES, shape(row.geometry))
        overlap = boundary.intersection(zone_m).area
        if overlap > 0.005 * boundary.area:  # ignore slivers where simplified boundaries merely touch
            found.append(({k: v for k, v in row._mapping.items() if k != "geometry"}, overlap / boundary.area))
    return found


def _places_inside(conn: Connection, zone: BaseGeometry) -> list[dict[str, Any]]:
    return [p for p in places.list_places(conn, bbox=zone.bounds) if p["lon"] is not None
            and zone.covers(Point(p["lon"], p["lat"]))]


def _cap_rings(zone: BaseGeometry, tolerance_deg: float = 0.0005) -> list[list[tuple[float, float]]]:
    """Outer rings as (lat, lon) pairs, simplified (~50 m) so an alert stays small, closed as CAP requires."""
    simple = simplify(zone, tolerance_deg, preserve_topology=True)
    polygons = [simple] if simple.geom_type == "Polygon" else list(getattr(simple, "geoms", []))
    rings = []
    for polygon in polygons:
        ring = [(round(lat, 5), round(lon, 5)) for lon, lat in mapping(polygon)["coordinates"][0]]
        if len(ring) >= 4:
            rings.append(ring)
    return rings
