"""Where a warning applies and who lives there: the CAP area and the people and places inside it.

A district-wide warning covers the district's boundary and its dongs; a city-wide one (area key
``city:11``) covers every district and dong of the city. A point hazard (a river gauge, a facility,
a crowd zone) covers a buffer around it (``targeting.toml``), and the districts and dongs that
buffer touches. People affected are estimated from district statistics in proportion to the
share of each district's area inside (statistics are per district; dongs have none yet).

Every sensor is placed the same way, however it was registered: a datastream takes the district
of where its Thing is (its place, else its current Location), found by point in polygon against
the loaded pack's areas (:func:`place_streams`), so its warnings cover that district as a pack
station's do. A warning that cannot be placed (no location, outside every loaded district) still
gets its facts, named after its sensor and marked :data:`UNPLACED` with the reason: it is kept
and shown, never dropped.

:class:`AreaFacts` is the one description of a warning's area: what the DB says is in it (made
here) and what its CAP alert says about it (``alerts.compose`` takes it as it is).
"""

from __future__ import annotations

import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any
from weakref import WeakKeyDictionary

from shapely import simplify
from shapely.geometry import Point, mapping, shape
from shapely.geometry.base import BaseGeometry
from sqlalchemy import Connection, Engine, select, update

from haechi.core.errors import InvalidInput
from haechi.model.geo import TO_DEGREES, TO_METRES, transform
from haechi.store import areas, places
from haechi.store.schema import admin_areas, datastreams, locations, thing_locations, things
from haechi.store.schema import places as place_table

from .pack import AreaLocator
from .provision import provision_stations

PEOPLE = ("population", "age_65_plus", "under_15", "foreigners")
#: What ``affected`` keeps beside the counts of people and places at risk: recorded, never announced.
BOOKKEEPING = frozenset({"districts", "places", "method"})

Ring = Sequence[tuple[float, float]]
#: Why a warning has no area, in Korean and English: shown to operators beside the warning.
UNPLACED: dict[str, tuple[str, str]] = {
    "no_location": ("센서의 위치 정보가 없음", "the sensor has no location"),
    "outside_areas": ("불러온 자치구 밖의 위치", "its location is outside every loaded district"),
}


@cache
def buffers() -> dict[str, float]:
    with open(Path(__file__).with_name("targeting.toml"), "rb") as f:
        return tomllib.load(f)["buffer_m"]


@dataclass(frozen=True, slots=True)
class AreaFacts:
    """A warning's area: its names, codes and shape, and who and what lies inside.

    ``names`` maps languages to the area's name; Chinese, Japanese and Vietnamese fall back to the
    English (romanised) name, which matches Seoul's road signs and maps, then to the Korean one.
    ``geocodes`` are 10-digit 행정표준코드 of the districts and dongs covered; ``polygons`` are
    rings of (lat, lon) in WGS84, as CAP wants them; ``circles`` are (lat, lon, radius in km), e.g.
    a buffer around a facility. ``affected`` counts people (population, age_65_plus, under_15,
    foreigners), facilities, shelters and dongs, and keeps some bookkeeping (:data:`BOOKKEEPING`:
    the districts' codes, every mapped place, the estimation method) stored with the alert but not
    announced in it. ``city`` names the region that prefixes headlines (default: Seoul, from the
    alerts' ``common.toml``); ``key`` is the warning's area key and ``area_code`` the district it
    belongs to, for lists and feeds. ``unplaced`` says why no loaded district holds it (a key of
    :data:`UNPLACED`): such a warning is kept, its alert describes the sensor and reaches no district.
    """

    names: Mapping[str, str]
    geocodes: tuple[str, ...] = ()
    polygons: tuple[Ring, ...] = ()
    circles: tuple[tuple[float, float, float], ...] = ()
    affected: Mapping[str, Any] = field(default_factory=dict)
    city: Mapping[str, str] = field(default_factory=dict)
    key: str = ""
    area_code: str | None = None
    unplaced: str | None = None  # why no district holds it: a key of UNPLACED

    @property
    def unplaced_reason(self) -> str | None:
        """The reason it could not be placed, in English, for logs and dead letters."""
        return f"cannot place warning area {self.key}: {UNPLACED[self.unplaced][1]}" if self.unplaced else None

    def name(self, language: str) -> str:
        return in_language(self.names, language)

    @property
    def name_ko(self) -> str | None:
        return self.names.get("ko")

    @property
    def name_en(self) -> str | None:
        return self.names.get("en")

    @property
    def counts(self) -> dict[str, int]:
        """The people and places at risk, as an alert announces them: ``affected`` less its bookkeeping."""
        return {k: int(v) for k, v in self.affected.items() if k not in BOOKKEEPING}


def in_language(names: Mapping[str, str], language: str) -> str:
    """The name in ``language``, else English, else Korean."""
    for lang in (language, "en", "ko"):
        if names.get(lang):
            return names[lang]
    raise InvalidInput("an area needs a name in Korean or English", field="area")


#: Facts already computed, per database: (the geography version they were computed at, facts by
#: area key, hazard and stream). A warning's alert, the care geofence, road closures and incidents
#: all ask for the same few areas, and computing one takes polygons and tens of queries (22 ms for a
#: gauge's, 230 ms for the city's, on two idle cores; several times that under ingest load).
_known: WeakKeyDictionary[Engine, tuple[int, dict[tuple[str, str, int | None], AreaFacts]]] = WeakKeyDictionary()
MAX_KNOWN = 4096  # distinct areas kept at one version; past it, start again


def area_facts(conn: Connection, area_key: str, hazard: str, datastream_id: int | None = None) -> AreaFacts:
    """The facts of a warning's area, computed once per geography version (``store.areas.geography_version``:
    database triggers count every change to areas, statistics, places, Things and Locations, whichever
    path made it), so they are as fresh as the database and cost one indexed read while it stands."""
    version = areas.geography_version(conn)
    if version is None:
        return _compute_facts(conn, area_key, hazard, datastream_id)
    seen, known = _known.get(conn.engine, (None, {}))
    if seen != version or len(known) >= MAX_KNOWN:
        known = {}
        _known[conn.engine] = (version, known)
    key = (area_key, hazard, datastream_id)
    if key not in known:
        known[key] = _compute_facts(conn, area_key, hazard, datastream_id)
    return known[key]


def _compute_facts(conn: Connection, area_key: str, hazard: str, datastream_id: int | None) -> AreaFacts:
    kind, _, ref = area_key.partition(":")
    if kind in ("city", "district", "dong"):
        area = areas.get_area(conn, ref)
        return _facts(conn, area_key, shape(area["geometry"]), area["name_ko"], area["name_en"], _within(conn, ref))
    thing = _thing_of(conn, kind, ref, datastream_id)
    anchor = _anchor(conn, kind, ref, thing)
    if anchor is None:
        return _nowhere(area_key, thing)
    lon, lat, name_ko, name_en = anchor
    radius = buffers().get(hazard, buffers()["default"])
    zone = transform(TO_DEGREES, Point(transform(TO_METRES, Point(lon, lat))).buffer(radius, quad_segs=8))
    suffix_ko, suffix_en = f" 주변 {radius / 1000:g}km", f" ({radius / 1000:g} km around)"
    facts = _facts(conn, area_key, zone, name_ko + suffix_ko, name_en + suffix_en)
    return facts if facts.affected["districts"] else replace(facts, unplaced="outside_areas")


def _nowhere(area_key: str, thing: Any) -> AreaFacts:
    """The facts of a warning from a sensor with no location: named after the sensor, no shape."""
    name = thing.name if thing is not None else area_key
    return AreaFacts(key=area_key, names={"ko": f"{name} (위치 미상)", "en": f"{name} (location unknown)"},
                     unplaced="no_location")


def _within(conn: Connection, code: str) -> list[tuple[dict[str, Any], float]]:
    """The districts and dongs an administrative area holds, itself included, each wholly covered.

    Codes nest by prefix (11 Seoul ⊃ 11140 Jung-gu ⊃ 11140101 a dong), so a city-wide warning (a
    PM10 advisory Seoul issues on its 25-district mean) reaches every district of the loaded pack.
    """
    c = admin_areas.c
    rows = conn.execute(select(*areas.SUMMARY_COLUMNS).where(
        c.level.in_(("district", "dong")), c.code.startswith(code, autoescape=True)).order_by(c.code))
    return [(dict(row._mapping), 1.0) for row in rows]


def _thing_of(conn: Connection, kind: str, ref: str, datastream_id: int | None) -> Any:
    """The Thing a point hazard's area belongs to (a facility's, a zone's, the reporting stream's)."""
    thing_id = int(ref) if kind in ("facility", "zone") and ref.isdigit() else None
    if thing_id is None and datastream_id is not None:
        thing_id = conn.execute(select(datastreams.c.thing_id).where(datastreams.c.id == datastream_id)).scalar()
    return conn.execute(select(things).where(things.c.id == thing_id)).first() if thing_id else None


def _anchor(conn: Connection, kind: str, ref: str, thing: Any) -> tuple[float, float, str, str] | None:
    """Where a point hazard is, and its name; None when nothing says where."""
    if kind == "gauge":
        [gauge] = [p for p in places.list_places(conn, "river_gauge") if p["ref"] == ref] or [None]
        if gauge is not None and gauge["lon"] is not None:
            return gauge["lon"], gauge["lat"], gauge["name_ko"], gauge["name_en"] or gauge["name_ko"]
    if thing is None:
        return None
    if thing.place_id is not None:
        place = places.get_place(conn, thing.place_id)
        if place["lon"] is not None:
            return place["lon"], place["lat"], place["name_ko"], place["name_en"] or place["name_ko"]
    point = _located(conn, thing.id)
    return (*point, thing.name, thing.name) if point else None


def _located(conn: Connection, thing_id: int) -> tuple[float, float] | None:
    """Where a Thing's newest current Location puts it (a point, or the middle of a shape)."""
    tl, loc = thing_locations.c, locations.c
    row = conn.execute(select(loc.lon, loc.lat, loc.location).join(thing_locations, tl.location_id == loc.id)
                       .where(tl.thing_id == thing_id).order_by(loc.id.desc()).limit(1)).first()
    if row is None:
        return None
    if row.lon is not None:
        return row.lon, row.lat
    try:
        middle = shape(row.location).representative_point()
    except (AttributeError, KeyError, TypeError, ValueError):  # a Location that is no GeoJSON geometry
        return None
    return (middle.x, middle.y) if not middle.is_empty else None


# ── placing sensors: the district and dong of where they are ───────────────────────────────


def locate(conn: Connection, lon: float, lat: float) -> tuple[str, str | None] | None:
    """(district, dong) of the loaded pack holding the point, else None; only the districts whose
    box holds it, and their dongs, are read (a sliver between dongs gets the nearest, as a pack's
    stations do: ``pack.AreaLocator``)."""
    c = admin_areas.c
    columns = (c.code, c.parent_code, c.level, c.geometry)
    districts = conn.execute(select(*columns).where(
        c.level == "district", c.geometry.is_not(None), c.min_lon <= lon, c.max_lon >= lon,
        c.min_lat <= lat, c.max_lat >= lat)).all()
    if not districts:
        return None
    dongs = conn.execute(select(*columns).where(
        c.level == "dong", c.geometry.is_not(None), c.parent_code.in_([d.code for d in districts]))).all()
    code = AreaLocator([dict(r._mapping) for r in (*districts, *dongs)]).code_at(lon, lat)
    if code is None:
        return None
    return code[:5], code if len(code) > 5 else None


def place_streams(conn: Connection, stream_ids: Iterable[int]) -> int:
    """Give these datastreams the district of where their Thing is, as a pack's stations have it
    (the dong beside it in ``properties.dong_code``): its place's area when it has one, else the
    point in polygon of its place or current Location; none when outside every loaded district.
    A stream standing for a whole city (a 2-digit code) stays so. Returns the streams changed."""
    ds = datastreams.c
    ids = sorted(set(stream_ids))
    if not ids:
        return 0
    rows = conn.execute(select(ds.id, ds.thing_id, ds.area_code, ds.properties).where(ds.id.in_(ids))).all()
    where: dict[int, tuple[str | None, str | None]] = {}
    changed = 0
    for row in rows:
        if row.area_code and len(row.area_code) < 5:
            continue
        if row.thing_id not in where:
            where[row.thing_id] = _district_and_dong(conn, row.thing_id)
        district, dong = where[row.thing_id]
        properties = {k: v for k, v in (row.properties or {}).items() if k != "dong_code"}
        properties |= {"dong_code": dong} if dong else {}
        if (row.area_code, row.properties or {}) != (district, properties):
            conn.execute(update(datastreams).where(ds.id == row.id).values(
                area_code=district, properties=properties or None))
            changed += 1
    return changed


def _district_and_dong(conn: Connection, thing_id: int) -> tuple[str | None, str | None]:
    thing = conn.execute(select(things).where(things.c.id == thing_id)).first()
    if thing is not None and thing.place_id is not None:
        place = places.get_place(conn, thing.place_id)
        if place["area_code"]:
            code = place["area_code"]
            return code[:5], code if len(code) > 5 else None
    anchor = _anchor(conn, "stream", "", thing)
    return (locate(conn, anchor[0], anchor[1]) or (None, None)) if anchor else (None, None)


def settle_places(conn: Connection, place_ids: Iterable[int]) -> int:
    """Places saved by a client or an importer, made what a pack's are: an area from their point
    when they came without one, and, for monitoring kinds (``stations.csv``), a Thing with its
    Datastreams, placed. Returns the datastreams created."""
    ids = sorted(set(place_ids))
    if not ids:
        return 0
    for place in conn.execute(select(place_table.c.id, place_table.c.lon, place_table.c.lat).where(
            place_table.c.id.in_(ids), place_table.c.area_code.is_(None), place_table.c.lon.is_not(None))):
        found = locate(conn, place.lon, place.lat)
        if found is not None:
            conn.execute(update(place_table).where(place_table.c.id == place.id)
                         .values(area_code=found[1] or found[0]))
    created = provision_stations(conn, ids)
    things_here = select(things.c.id).where(things.c.place_id.in_(ids))
    place_streams(conn, conn.execute(select(datastreams.c.id).where(datastreams.c.thing_id.in_(things_here)))
                  .scalars())
    return created


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
        key=key, names={lang: name for lang, name in (("ko", name_ko), ("en", name_en)) if name},
        area_code=_district_of([d for d, _ in districts]),
        geocodes=tuple(sorted(a["code"].ljust(10, "0") for a, _ in covered if a["level"] in ("district", "dong"))),
        polygons=_cap_rings(zone),
        affected=people | {
            "districts": [d["code"] for d, _ in districts], "dongs": len(dongs),
            "facilities": sum(1 for p in inside if p["kind"] == "facility"),
            "shelters": sum(1 for p in inside if p["kind"] == "shelter"),
            "places": len(inside), "method": "district statistics × share of district area inside",
        },
    )


def _district_of(districts: list[dict[str, Any]]) -> str | None:
    """The one district covered, else the city holding them (for lists and feeds)."""
    if not districts:
        return None
    return districts[0]["code"] if len(districts) == 1 else districts[0]["parent_code"]


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


def _cap_rings(zone: BaseGeometry, tolerance_deg: float = 0.0005) -> tuple[Ring, ...]:
    """Outer rings as (lat, lon) pairs, simplified (~50 m) so an alert stays small, closed as CAP requires."""
    simple = simplify(zone, tolerance_deg, preserve_topology=True)
    polygons = [simple] if simple.geom_type == "Polygon" else list(getattr(simple, "geoms", []))
    rings = []
    for polygon in polygons:
        ring = tuple((round(lat, 5), round(lon, 5)) for lon, lat in mapping(polygon)["coordinates"][0])
        if len(ring) >= 4:
            rings.append(ring)
    return tuple(rings)
