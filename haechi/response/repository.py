"""Storage of the response tables: CCTV events, units, drones, dispatches.

Incidents and their history are one floor down (``haechi.store.incidents``): care opens them too.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, select, update

from haechi.core.errors import NotFound
from haechi.store.schema import (
    cctv_cameras,
    cctv_events,
    dispatches,
    drones,
    fire_units,
    incidents,
    places,
)
from haechi.store.sql import row_dict


def _add(conn: Connection, table, row: dict[str, Any]) -> int:
    return conn.execute(insert(table).values(**row)).inserted_primary_key[0]


def _one(conn: Connection, table, row_id: int, what: str) -> dict[str, Any]:
    row = conn.execute(select(table).where(table.c.id == row_id)).first()
    if row is None:
        raise NotFound(f"no {what} with id {row_id}")
    return row_dict(row)


# ── CCTV ──

def camera(conn: Connection, *, place_id: int | None = None, ref: str | None = None) -> dict[str, Any] | None:
    """A registered camera with its view (direction, field of view, range), by place id or ref."""
    query = select(places, cctv_cameras.c.purpose, cctv_cameras.c.direction_deg, cctv_cameras.c.fov_deg,
                   cctv_cameras.c.range_m).select_from(
        places.outerjoin(cctv_cameras, cctv_cameras.c.place_id == places.c.id)).where(places.c.kind == "cctv")
    query = query.where(places.c.id == place_id) if place_id is not None else query.where(places.c.ref == ref)
    row = conn.execute(query).first()
    return row_dict(row) if row else None


def cameras_in_box(conn: Connection, box: tuple[float, float, float, float]) -> list[dict[str, Any]]:
    w, s, e, n = box
    query = select(places, cctv_cameras.c.purpose, cctv_cameras.c.direction_deg, cctv_cameras.c.fov_deg,
                   cctv_cameras.c.range_m).select_from(
        places.outerjoin(cctv_cameras, cctv_cameras.c.place_id == places.c.id)).where(
        places.c.kind == "cctv", places.c.lon.between(w, e), places.c.lat.between(s, n))
    return [row_dict(r) for r in conn.execute(query)]


def cctv_event_seen(conn: Connection, event_id: str) -> bool:
    return conn.execute(select(cctv_events.c.id).where(cctv_events.c.event_id == event_id)).first() is not None


def add_cctv_event(conn: Connection, row: dict[str, Any]) -> int:
    return _add(conn, cctv_events, row)


def get_cctv_event(conn: Connection, row_id: int) -> dict[str, Any]:
    return _one(conn, cctv_events, row_id, "CCTV event")


def find_cctv_events(conn: Connection, *, limit: int = 100) -> list[dict[str, Any]]:
    query = select(cctv_events).order_by(cctv_events.c.observed_at.desc(), cctv_events.c.id.desc()).limit(limit)
    return [row_dict(r) for r in conn.execute(query)]


# ── fire units ──

def get_unit(conn: Connection, unit_id: int, *, for_update: bool = False) -> dict[str, Any]:
    query = select(fire_units).where(fire_units.c.id == unit_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()  # a unit is dispatched once even if two operators click
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no fire unit with id {unit_id}")
    return row_dict(row)


def find_units(conn: Connection, *, status: str | None = None,
               station_place_id: int | None = None) -> list[dict[str, Any]]:
    """Units with their station's name and position (used when the unit reports none of its own)."""
    c = fire_units.c
    query = select(fire_units, places.c.name_ko.label("station_name_ko"), places.c.name_en.label("station_name_en"),
                   places.c.lon.label("station_lon"), places.c.lat.label("station_lat")).select_from(
        fire_units.join(places, places.c.id == c.station_place_id)).order_by(c.call_sign)
    if status:
        query = query.where(c.status == status)
    if station_place_id:
        query = query.where(c.station_place_id == station_place_id)
    units = []
    for r in conn.execute(query):
        unit = row_dict(r)
        if unit["lon"] is None:
            unit["lon"], unit["lat"] = unit["station_lon"], unit["station_lat"]
        units.append(unit)
    return units


def add_unit(conn: Connection, row: dict[str, Any]) -> int:
    return _add(conn, fire_units, row)


def change_unit(conn: Connection, unit_id: int, values: dict[str, Any], *, was_status: str | None = None) -> bool:
    """Update a unit; with ``was_status``, only if it still has that status (False if not)."""
    query = update(fire_units).where(fire_units.c.id == unit_id)
    if was_status is not None:
        query = query.where(fire_units.c.status == was_status)
    return conn.execute(query.values(**values)).rowcount == 1


# ── dispatches ──

def add_dispatch(conn: Connection, row: dict[str, Any]) -> int:
    return _add(conn, dispatches, row)


def get_dispatch(conn: Connection, dispatch_id: int) -> dict[str, Any]:
    return _one(conn, dispatches, dispatch_id, "dispatch")


def change_dispatch(conn: Connection, dispatch_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(dispatches).where(dispatches.c.id == dispatch_id).values(**values))


def dispatches_of(conn: Connection, *, incident_id: int | None = None, unit_id: int | None = None,
                  open_only: bool = False) -> list[dict[str, Any]]:
    c = dispatches.c
    query = select(dispatches, fire_units.c.call_sign, fire_units.c.unit_type).select_from(
        dispatches.join(fire_units, fire_units.c.id == c.unit_id)).order_by(c.id)
    if incident_id is not None:
        query = query.where(c.incident_id == incident_id)
    if unit_id is not None:
        query = query.where(c.unit_id == unit_id)
    if open_only:
        query = query.where(c.cleared_at.is_(None))
    return [row_dict(r) for r in conn.execute(query)]


def arrivals(conn: Connection, *, since: datetime | None = None, kind: str | None = None) -> list[dict[str, Any]]:
    """Every recorded arrival with its incident's kind and center, oldest first."""
    c = dispatches.c
    query = select(c.id, c.incident_id, c.unit_id, c.dispatched_at, c.arrived_at, c.response_s, c.golden_time_s,
                   c.met_golden_time, c.estimate_s, c.estimate_method, fire_units.c.call_sign,
                   incidents.c.kind, incidents.c.area_code).select_from(
        dispatches.join(fire_units, fire_units.c.id == c.unit_id).join(incidents, incidents.c.id == c.incident_id)
    ).where(c.arrived_at.is_not(None)).order_by(c.arrived_at, c.id)
    if since is not None:
        query = query.where(c.dispatched_at >= since)
    if kind:
        query = query.where(incidents.c.kind == kind)
    return [row_dict(r) for r in conn.execute(query)]


# ── drones ──

def add_drone(conn: Connection, row: dict[str, Any]) -> int:
    return _add(conn, drones, row)


def get_drone(conn: Connection, drone_id: int) -> dict[str, Any]:
    return _one(conn, drones, drone_id, "drone")


def find_drones(conn: Connection) -> list[dict[str, Any]]:
    return [row_dict(r) for r in conn.execute(select(drones).order_by(drones.c.call_sign))]


def change_drone(conn: Connection, drone_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(drones).where(drones.c.id == drone_id).values(**values))
