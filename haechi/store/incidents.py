"""Incidents and their history (``incidents``, ``incident_events``): the records, and how a change is written.

Every change writes a row to ``incident_events`` (actor, time, from → to, note) in the same
transaction as the change itself, so the audit trail can never disagree with the incident.
These are the words several capabilities share: response moves incidents through their
lifecycle, dispatches units and drones to them; care opens one when a ward goes missing. The
rules of what may be opened or moved (kinds, centers, lifecycles) stay with response.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, insert, select, update

from haechi.core.clock import utcnow
from haechi.core.errors import NotFound

from .access import Principal
from .areas import area_at
from .schema import incident_events, incidents
from .sql import row_dict


def actor_name(actor: str | Principal) -> str:
    return actor.name if isinstance(actor, Principal) else str(actor)


def add_reported(
    conn: Connection, *, kind: str, lon: float, lat: float, title: str, severity: str, center: str, source: str,
    detail: dict | None, actor: str | Principal, source_ref: str | None = None,
) -> dict[str, Any]:
    """Store a new incident in status ``reported`` with its opening as the first entry of its history.

    The caller has checked the fields (response's rules; care's missing person is always valid).
    """
    now = utcnow()
    area = area_at(conn, lon, lat)
    who = actor_name(actor)
    incident_id = add_incident(conn, {
        "kind": kind, "title": title.strip(), "severity": severity, "status": "reported", "center": center,
        "lon": lon, "lat": lat, "area_code": area["code"] if area else None, "source": source,
        "source_ref": source_ref, "detail": detail, "opened_at": now, "updated_at": now, "created_by": who})
    add_event(conn, {"incident_id": incident_id, "at": now, "actor": who, "action": "opened",
                     "to_value": "reported", "note": title.strip(),
                     "detail": {"center": center, "source": source, "source_ref": source_ref}})
    return get_incident(conn, incident_id)


def record(conn: Connection, incident_id: int, action: str, *, actor: str | Principal, note: str | None = None,
           from_value: str | None = None, to_value: str | None = None, detail: dict | None = None) -> None:
    """Add an entry to an incident's history (dispatches, arrivals, camera events attached …)."""
    add_event(conn, {"incident_id": incident_id, "at": utcnow(), "actor": actor_name(actor), "action": action,
                     "from_value": from_value, "to_value": to_value, "note": note, "detail": detail})
    change_incident(conn, incident_id, {"updated_at": utcnow()})


def add_incident(conn: Connection, row: dict[str, Any]) -> int:
    return conn.execute(insert(incidents).values(**row)).inserted_primary_key[0]


def get_incident(conn: Connection, incident_id: int, *, for_update: bool = False) -> dict[str, Any]:
    query = select(incidents).where(incidents.c.id == incident_id)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()  # two operators moving the same incident serialise here
    row = conn.execute(query).first()
    if row is None:
        raise NotFound(f"no incident with id {incident_id}")
    return row_dict(row)


def change_incident(conn: Connection, incident_id: int, values: dict[str, Any], *,
                    was: dict[str, Any] | None = None) -> bool:
    """Update an incident; with ``was``, only if those columns still hold those values (False if not)."""
    query = update(incidents).where(incidents.c.id == incident_id)
    for column, value in (was or {}).items():
        query = query.where(incidents.c[column] == value)
    return conn.execute(query.values(**values)).rowcount == 1


def find_incidents(
    conn: Connection, *, center: str | None = None, statuses: Sequence[str] | None = None,
    kind: str | None = None, area_code: str | None = None, limit: int = 100, offset: int = 0,
) -> list[dict[str, Any]]:
    c = incidents.c
    query = select(incidents).order_by(c.opened_at.desc(), c.id.desc()).limit(limit).offset(offset)
    if center:
        query = query.where(c.center == center)
    if statuses:
        query = query.where(c.status.in_(list(statuses)))
    if kind:
        query = query.where(c.kind == kind)
    if area_code:
        query = query.where(c.area_code.startswith(area_code))
    return [row_dict(r) for r in conn.execute(query)]


def open_incidents_of_kind(conn: Connection, kind: str, open_states: Sequence[str]) -> list[dict[str, Any]]:
    query = select(incidents).where(incidents.c.kind == kind, incidents.c.status.in_(list(open_states)))
    return [row_dict(r) for r in conn.execute(query.order_by(incidents.c.id))]


def add_event(conn: Connection, row: dict[str, Any]) -> int:
    return conn.execute(insert(incident_events).values(**row)).inserted_primary_key[0]


def events_of(conn: Connection, incident_id: int) -> list[dict[str, Any]]:
    c = incident_events.c
    query = select(incident_events).where(c.incident_id == incident_id).order_by(c.id)
    return [row_dict(r) for r in conn.execute(query)]
