"""Administrative areas (city → district → dong), their statistics and land use."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from shapely.geometry import Point, shape
from sqlalchemy import Connection, func, select

from haechi.core.errors import NotFound

from .schema import admin_areas, area_statistics, land_use
from .schema import geography_version as geography_version_table
from .sql import row_dict, upsert

SUMMARY_COLUMNS = [c for c in admin_areas.c if c.name != "geometry"]


def save_areas(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    # Parents first, so the foreign key holds within one batch.
    order = {"city": 0, "district": 1, "dong": 2}
    return upsert(conn, admin_areas, sorted(rows, key=lambda r: order[r["level"]]), ["code"])


def save_statistics(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    return upsert(conn, area_statistics, rows, ["area_code", "indicator", "year"])


def save_land_use(conn: Connection, rows: Sequence[dict[str, Any]]) -> int:
    return upsert(conn, land_use, rows, ["area_code", "use_class"])


def list_areas(
    conn: Connection, *, level: str | None = None, parent: str | None = None, geometry: bool = False
) -> list[dict[str, Any]]:
    query = select(*(admin_areas.c if geometry else SUMMARY_COLUMNS)).order_by(admin_areas.c.code)
    if level:
        query = query.where(admin_areas.c.level == level)
    if parent:
        query = query.where(admin_areas.c.parent_code == parent)
    return [row_dict(r) for r in conn.execute(query)]


def get_area(conn: Connection, code: str, *, geometry: bool = True) -> dict[str, Any]:
    columns = admin_areas.c if geometry else SUMMARY_COLUMNS
    row = conn.execute(select(*columns).where(admin_areas.c.code == code)).first()
    if row is None:
        raise NotFound(f"no administrative area with code {code!r}")
    return row_dict(row)


def area_at(conn: Connection, lon: float, lat: float, level: str = "district") -> dict[str, Any] | None:
    """The area of ``level`` containing the point: a bbox query, then an exact shapely test."""
    c = admin_areas.c
    rows = conn.execute(
        select(admin_areas).where(
            c.level == level, c.min_lon <= lon, c.max_lon >= lon, c.min_lat <= lat, c.max_lat >= lat
        )
    )
    point = Point(lon, lat)
    for row in rows:
        if row.geometry and shape(row.geometry).covers(point):
            return {k: v for k, v in row_dict(row).items() if k != "geometry"}
    return None


def statistics(conn: Connection, code: str, year: int | None = None) -> dict[str, dict[str, Any]]:
    """Each indicator of an area: ``{indicator: {value, year, source}}``, the latest year unless given."""
    c = area_statistics.c
    query = select(c.indicator, c.year, c.value, c.source).where(c.area_code == code)
    query = query.where(c.year <= year) if year is not None else query
    found: dict[str, dict[str, Any]] = {}
    for row in conn.execute(query.order_by(c.indicator, c.year)):
        found[row.indicator] = {"value": row.value, "year": row.year, "source": row.source}
    return found


def count_areas(conn: Connection) -> dict[str, int]:
    rows = conn.execute(select(admin_areas.c.level, func.count()).group_by(admin_areas.c.level))
    return {level: n for level, n in rows}


def geography_version(conn: Connection) -> int | None:
    """The count of changes to the tables that decide where warnings apply (``GEOGRAPHY_TABLES``),
    kept by triggers; None when its row is missing (emptied by hand): then nothing may be reused."""
    return conn.execute(select(geography_version_table.c.version).where(geography_version_table.c.id == 1)).scalar()
