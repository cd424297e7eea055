"""Warnings in force and past, and the CAP alerts that announced them."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, insert, or_, select, update

from haechi.core.errors import Conflict, NotFound

from .schema import alerts, observations, warnings
from .sql import row_dict


def open_warning(conn: Connection, row: dict[str, Any]) -> int:
    """A new warning for a hazard × area; the caller has checked none is active there."""
    return conn.execute(insert(warnings).values(status="active", **row)).inserted_primary_key[0]


def active_warning(conn: Connection, hazard: str, area_key: str, *, practice: bool) -> dict[str, Any] | None:
    """The warning in force for a hazard × area, among the actual ones or among drills and tests
    (``practice``): real and practice warnings never stand for each other."""
    c = warnings.c
    row = conn.execute(select(warnings).where(c.hazard == hazard, c.area_key == area_key, c.status == "active",
                                              c.exercise.is_(practice))
                       .order_by(c.id.desc())).first()
    return row_dict(row) if row else None


def change_warning(conn: Connection, warning_id: int, values: dict[str, Any]) -> None:
    conn.execute(update(warnings).where(warnings.c.id == warning_id).values(**values))


def get_warning(conn: Connection, warning_id: int) -> dict[str, Any]:
    row = conn.execute(select(warnings).where(warnings.c.id == warning_id)).first()
    if row is None:
        raise NotFound(f"no warning with id {warning_id}")
    return row_dict(row)


def acknowledge(conn: Connection, warning_id: int, by: str, at: datetime) -> dict[str, Any]:
    """Mark a warning in force as seen by an operator; the first acknowledgement stands."""
    warning = get_warning(conn, warning_id)
    if warning["status"] != "active":
        raise Conflict(f"warning {warning_id} is {warning['status']}: only a warning in force can be acknowledged")
    if warning["acknowledged_at"] is None:
        conn.execute(update(warnings).where(warnings.c.id == warning_id)
                     .values(acknowledged_at=at, acknowledged_by=by))
    return get_warning(conn, warning_id)


def list_warnings(
    conn: Connection, *, active_only: bool = True, hazard: str | None = None, area_code: str | None = None,
    since: datetime | None = None, limit: int = 200,
) -> list[dict[str, Any]]:
    c = warnings.c
    query = select(warnings).order_by(c.updated_at.desc(), c.id.desc()).limit(limit)
    if active_only:
        query = query.where(c.status == "active")
    if hazard:
        query = query.where(c.hazard == hazard)
    if area_code:
        query = query.where(c.area_code.startswith(area_code))
    if since:
        query = query.where(c.updated_at >= since)
    return [row_dict(r) for r in conn.execute(query)]


def save_alert(conn: Connection, row: dict[str, Any]) -> int:
    return conn.execute(insert(alerts).values(**row)).inserted_primary_key[0]


def latest_alert_of(conn: Connection, warning_id: int) -> dict[str, Any] | None:
    row = conn.execute(select(alerts).where(alerts.c.warning_id == warning_id)
                       .order_by(alerts.c.id.desc())).first()
    return row_dict(row) if row else None


def alerts_of(conn: Connection, warning_id: int) -> list[dict[str, Any]]:
    """Every alert of a warning, newest first (an area in pieces has one per piece and change)."""
    return [row_dict(r) for r in conn.execute(select(alerts).where(alerts.c.warning_id == warning_id)
                                              .order_by(alerts.c.id.desc()))]


def get_alert_by_identifier(conn: Connection, identifier: str) -> dict[str, Any] | None:
    row = conn.execute(select(alerts).where(alerts.c.identifier == identifier)).first()
    return row_dict(row) if row else None


def recent_alerts(conn: Connection, since: datetime) -> list[dict[str, Any]]:
    """(hazard, area_key, identifier) of the alerts of actual warnings in force or changed since
    ``since``: what a new engine leader finds already decided."""
    w = warnings.c
    query = (select(w.hazard, w.area_key, alerts.c.identifier)
             .join(alerts, alerts.c.warning_id == w.id)
             .where(w.exercise.is_(False),
                    or_(w.status == "active", w.updated_at >= since, w.cancelled_at >= since)))
    return [row_dict(r) for r in conn.execute(query)]


def good_readings(conn: Connection, stream_ids: Iterable[int], since: datetime) -> list[tuple]:
    """(stream, phenomenon time, result, result time) of the QC-good numeric readings of these
    streams from ``since`` on, oldest first: the history the warnings engine is rebuilt from."""
    o = observations.c
    ids = sorted(set(stream_ids))
    found: list[tuple] = []
    for start in range(0, len(ids), 1000):  # bounded IN lists
        query = (select(o.datastream_id, o.phenomenon_time, o.result, o.result_time)
                 .where(o.datastream_id.in_(ids[start:start + 1000]), o.phenomenon_time >= since,
                        o.result_quality == "good", o.result.is_not(None)))
        found += [tuple(r) for r in conn.execute(query)]
    found.sort(key=lambda r: (r[1], r[0]))
    return found
