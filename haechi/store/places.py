"""Places of the city: facilities, shelters, fire stations, hospitals, CCTV, school zones, gauges."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, func, select, tuple_

from haechi.core.errors import NotFound
from haechi.model.geo import degree_box, haversine_m

from .schema import (
    cctv_cameras,
    facilities,
    fire_units,
    gauges,
    hospitals,
    places,
    school_zones,
    shelters,
)
from .sql import row_dict, upsert

#: The detail table that holds each kind's own facts.
DETAILS: dict[str, Table] = {
    "facility": facilities,
    "shelter": shelters,
    "hospital": hospitals,
    "cctv": cctv_cameras,
    "school_zone": school_zones,
    "river_gauge": gauges,
}
COMMON = [c.name for c in places.c if c.name != "id"]


def save_places(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    """Upsert places by (kind, ref); keys that are not common columns go to the kind's detail table."""
    if not rows:
        return 0
    commons, details = [], []
    for r in rows:
        table = DETAILS.get(r["kind"])
        detail = {c.name: r.get(c.name) for c in table.c if c.name != "place_id"} if table is not None else {}
        # Facts with a column of their own are not repeated in the free-form attrs.
        attrs = {k: v for k, v in (r.get("attrs") or {}).items() if k not in detail} or None
        commons.append({k: r.get(k) for k in COMMON} | {"attrs": attrs})
        details.append((table, detail))
    upsert(conn, places, commons, ["kind", "ref"])
    ids = ids_of(conn, [(r["kind"], r["ref"]) for r in rows])
    by_table: dict[str, list[dict[str, Any]]] = {}
    for r, (table, detail) in zip(rows, details, strict=True):
        if table is not None:
            by_table.setdefault(table.name, []).append({"place_id": ids[(r["kind"], r["ref"])], **detail})
    for name, detail_rows in by_table.items():
        upsert(conn, places.metadata.tables[name], detail_rows, ["place_id"])
    return len(rows)


def ids_of(conn: Connection, keys: list[tuple[str, str]]) -> dict[tuple[str, str], int]:
    """(kind, ref) → place id, for the places that exist."""
    found: dict[tuple[str, str], int] = {}
    for start in range(0, len(keys), 500):  # stay under SQLite's bound-parameter limit
        chunk = keys[start : start + 500]
        query = select(places.c.kind, places.c.ref, places.c.id).where(
            tuple_(places.c.kind, places.c.ref).in_(chunk)
        )
        found.update({(k, r): i for k, r, i in conn.execute(query)})
    return found


def _with_detail(kind: str | None):
    table = DETAILS.get(kind) if kind else None
    if table is None:
        return select(places), places
    joined = places.outerjoin(table, table.c.place_id == places.c.id)
    return select(places, *(c for c in table.c if c.name != "place_id")).select_from(joined), joined


def list_places(
    conn: Connection,
    kind: str | None = None,
    *,
    area_code: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    query, _ = _with_detail(kind)
    if kind:
        query = query.where(places.c.kind == kind)
    if area_code:
        query = query.where(places.c.area_code.startswith(area_code))
    if bbox:
        w, s, e, n = bbox
        query = query.where(places.c.lon.between(w, e), places.c.lat.between(s, n))
    query = query.order_by(places.c.kind, places.c.ref).limit(limit)
    return [row_dict(r) for r in conn.execute(query)]


def get_place(conn: Connection, place_id: int) -> dict[str, Any]:
    kind = conn.execute(select(places.c.kind).where(places.c.id == place_id)).scalar()
    if kind is None:
        raise NotFound(f"no place with id {place_id}")
    query, _ = _with_detail(kind)
    return row_dict(conn.execute(query.where(places.c.id == place_id)).one())


def nearest(
    conn: Connection,
    lon: float,
    lat: float,
    *,
    kinds: Iterable[str] | None = None,
    within_m: float = 5_000,
    limit: int = 10,
) -> list[dict[str, Any]]:
    """Places within ``within_m`` metres of the point, nearest first, each with ``distance_m``."""
    w, s, e, n = degree_box(lon, lat, within_m)
    query = select(places).where(places.c.lon.between(w, e), places.c.lat.between(s, n))
    if kinds:
        query = query.where(places.c.kind.in_(list(kinds)))
    found = []
    for row in conn.execute(query):
        d = haversine_m(lon, lat, row.lon, row.lat)
        if d <= within_m:
            found.append({**row_dict(row), "distance_m": round(d, 1)})
    return sorted(found, key=lambda p: p["distance_m"])[:limit]


def save_units(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    return upsert(conn, fire_units, rows, ["call_sign"])


def count_places(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(places.c.kind, func.count()).group_by(places.c.kind))
    return {kind: n for kind, n in rows}


#: Safety grades of 「시설물의 안전 및 유지관리에 관한 특별법」 that call for repair or closure
#: (D 미흡: urgent repair, use may be restricted; E 불량: unsafe, use stopped).
GRADES_AT_RISK = ("D", "E")


def area_summary(conn: Connection, area_code: str) -> dict[str, Any]:
    """What a district or dong holds: places by kind, shelter capacity, facilities graded D or E."""
    inside = places.c.area_code.startswith(area_code)
    counts = {kind: n for kind, n in conn.execute(
        select(places.c.kind, func.count()).where(inside).group_by(places.c.kind))}
    capacity = conn.execute(select(func.coalesce(func.sum(shelters.c.capacity), 0))
                            .select_from(places.join(shelters, shelters.c.place_id == places.c.id))
                            .where(inside)).scalar()
    query, _ = _with_detail("facility")
    at_risk = [row_dict(r) for r in conn.execute(
        query.where(inside, places.c.kind == "facility", facilities.c.safety_grade.in_(GRADES_AT_RISK))
        .order_by(facilities.c.safety_grade.desc(), places.c.name_ko).limit(50))]
    return {"places": counts, "shelter_capacity": int(capacity or 0), "facilities_at_risk": at_risk}
