"""Incidents shared by the three centers: open, move through the lifecycle, hand off, keep history.

Every change writes a row to ``incident_events`` (actor, time, from → to, note) in the same
transaction as the change itself, so the audit trail can never disagree with the incident; the
records and the trail are ``haechi.store.incidents``. Closing builds on dispatch and drones (what
was sent is given back); they in turn need only the records and ``status.move_incident``.
"""

from __future__ import annotations

from typing import Any

from pydantic_core import to_jsonable_python
from shapely.geometry import Polygon
from shapely.ops import unary_union

from haechi.cities.targeting import area_facts
from haechi.core.clock import utcnow
from haechi.core.errors import Conflict, InvalidInput, NotFound
from haechi.core.events import Event
from haechi.model.access import Center
from haechi.model.events import INCIDENT_CHANGED
from haechi.store import records
from haechi.store import warnings as warning_store
from haechi.store.access import Principal
from haechi.store.incidents import (
    actor_name,
    add_event,
    add_reported,
    change_incident,
    events_of,
    find_incidents,
    get_incident,
)
from haechi.store.schema import citizen_reports

from . import dispatch, drones, lifecycle, repository
from .config import incident_kinds, settings
from .status import move_incident

SEVERITIES = ("low", "medium", "high", "critical")
SOURCES = ("operator", "report", "warning", "cctv", "care")
CENTERS = tuple(c.value for c in Center)


EVENT_KEYS = ("id", "kind", "title", "severity", "status", "center", "lon", "lat", "area_code", "source", "updated_at")


def changed_event(incident: dict[str, Any], action: str) -> Event:
    """The ``incident.changed`` bus event for an incident after ``action`` (publish it after commit)."""
    return Event(INCIDENT_CHANGED, to_jsonable_python({**{k: incident[k] for k in EVENT_KEYS}, "action": action}))


def open_incident(
    conn, *, kind: str, lon: float, lat: float, title: str, severity: str = "high",
    center: Center | str = Center.FIRE_119, source: str = "operator", detail: dict | None = None,
    actor: str | Principal,
) -> dict[str, Any]:
    """Open an incident in status ``reported``, owned by ``center``; returns the stored incident.

    Refuses (InvalidInput naming the field) an unknown kind, severity, center or source, and
    coordinates outside WGS84. The opening is the first entry of the incident's history.
    """
    return _open(conn, kind=kind, lon=lon, lat=lat, title=title, severity=severity, center=center,
                 source=source, detail=detail, actor=actor)


def _open(conn, *, kind, lon, lat, title, severity, center, source, detail, actor,
          source_ref: str | None = None) -> dict[str, Any]:
    center = str(Center(center).value) if center in CENTERS or isinstance(center, Center) else center
    _validate(kind=kind, lon=lon, lat=lat, title=title, severity=severity, center=center, source=source)
    return add_reported(conn, kind=kind, lon=lon, lat=lat, title=title, severity=severity, center=center,
                        source=source, detail=detail, actor=actor, source_ref=source_ref)


def _validate(*, kind, lon, lat, title, severity, center, source) -> None:
    if kind not in incident_kinds():
        raise InvalidInput(f"unknown incident kind {kind!r}; the kinds are {', '.join(incident_kinds())}", field="kind")
    if severity not in SEVERITIES:
        raise InvalidInput(f"severity must be one of {', '.join(SEVERITIES)}, not {severity!r}", field="severity")
    if center not in CENTERS:
        raise InvalidInput(f"center must be one of {', '.join(CENTERS)}, not {center!r}", field="center")
    if source not in SOURCES:
        raise InvalidInput(f"source must be one of {', '.join(SOURCES)}, not {source!r}", field="source")
    _check_point(lon, lat)
    if not title or not title.strip():
        raise InvalidInput("give the incident a title", field="title")


def _check_point(lon, lat, prefix: str = "") -> None:
    for name, value, bound in (("lon", lon, 180), ("lat", lat, 90)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not -bound <= value <= bound:
            raise InvalidInput(f"{name} must be a number within ±{bound} degrees (WGS84), not {value!r}",
                               field=prefix + name)


def change_status(conn, incident_id: int, status: str, *, actor: str | Principal,
                  note: str | None = None) -> dict[str, Any]:
    """Move an incident to ``status`` if its lifecycle allows it (409 naming the allowed next states).

    Reaching a final status (``closed``) gives back what was sent to it: its units return to
    service and its drones are released, each step in its history. The answer is the incident,
    with ``released``: the units and drones that were given back (empty unless final).
    """
    now = move_incident(conn, incident_id, status, actor=actor, note=note)
    released = _release(conn, incident_id, status, actor=actor, now=now)
    return get_incident(conn, incident_id) | {"released": released}


def _release(conn, incident_id: int, status: str, *, actor: str | Principal, now) -> dict[str, list[dict[str, Any]]]:
    """What an incident in a final status no longer needs: its units and drones, given back."""
    if not lifecycle.is_final(lifecycle.INCIDENT, status):
        return {"units": [], "drones": []}
    reason = f"incident {status}"
    return {"units": dispatch.release_units(conn, incident_id, actor=actor, now=now, reason=reason),
            "drones": drones.release_all(conn, incident_id, actor=actor)}


def hand_off(conn, incident_id: int, center: str, *, actor: str | Principal, note: str | None = None) -> dict[str, Any]:
    """Give the incident to another center; its history stays with it."""
    if center not in CENTERS:
        raise InvalidInput(f"center must be one of {', '.join(CENTERS)}, not {center!r}", field="body.center")
    incident = get_incident(conn, incident_id, for_update=True)
    if incident["status"] == "closed":
        raise Conflict(f"incident {incident_id} is closed; reopen is not allowed, open a new one", field="body.center")
    if incident["center"] == center:
        raise Conflict(f"incident {incident_id} is already owned by center {center}", field="body.center")
    now = utcnow()
    if not change_incident(conn, incident_id, {"center": center, "updated_at": now},
                           was={"center": incident["center"]}):
        raise Conflict(f"incident {incident_id} changed meanwhile; reload it and try again", field="body.center")
    add_event(conn, {"incident_id": incident_id, "at": now, "actor": actor_name(actor), "action": "handoff",
                     "from_value": incident["center"], "to_value": center, "note": note})
    return get_incident(conn, incident_id)


def add_note(conn, incident_id: int, note: str, *, actor: str | Principal) -> dict[str, Any]:
    get_incident(conn, incident_id)
    add_event(conn, {"incident_id": incident_id, "at": utcnow(), "actor": actor_name(actor),
                     "action": "note", "note": note})
    return get_incident(conn, incident_id)


def from_report(conn, report_id: int, *, actor: str | Principal, kind: str, severity: str = "medium",
                center: str = Center.SITUATION_ROOM.value, title: str | None = None,
                lon: float | None = None, lat: float | None = None) -> dict[str, Any]:
    """Open an incident from a citizen's report, link them, and mark the report ``triaged``."""
    try:
        report = records.get_report(conn, report_id)
    except NotFound:
        raise InvalidInput(f"no citizen report with id {report_id}", field="body.report_id") from None
    if report["status"] == "triaged":
        raise Conflict(f"citizen report {report_id} is already triaged", field="body.report_id")
    lon = lon if lon is not None else report["lon"]
    lat = lat if lat is not None else report["lat"]
    if lon is None:
        raise InvalidInput(f"citizen report {report_id} has no location; give lon and lat", field="body.lon")
    incident = _open(conn, kind=kind, lon=lon, lat=lat, title=title or report["description"][:300], severity=severity,
                     center=center, source="report", detail={"report": report["description"]}, actor=actor,
                     source_ref=f"report:{report_id}")
    conn.execute(citizen_reports.update().where(citizen_reports.c.id == report_id).values(status="triaged"))
    return incident


def from_warning(conn, warning_id: int, *, actor: str | Principal, center: str = Center.SITUATION_ROOM.value,
                 kind: str | None = None, title: str | None = None,
                 lon: float | None = None, lat: float | None = None) -> dict[str, Any]:
    """Open an incident from a warning: kind and severity follow the hazard and crisis level."""
    try:
        warning = warning_store.get_warning(conn, warning_id)
    except NotFound:
        raise InvalidInput(f"no warning with id {warning_id}", field="body.warning_id") from None
    mapping = settings()["from_warning"]
    kind = kind or mapping["kinds"].get(warning["hazard"], "other")
    if lon is None:
        lon, lat = _warning_point(conn, warning)
    title = title or f"{warning['hazard']} {warning['level']} ({warning['area_key']})"
    return _open(conn, kind=kind, lon=lon, lat=lat, title=title,
                 severity=mapping["severity"].get(warning["crisis_level"], "medium"), center=center,
                 source="warning",
                 detail={"warning": {k: warning[k] for k in ("hazard", "level", "crisis_level", "area_key")}},
                 actor=actor, source_ref=f"warning:{warning_id}")


def _warning_point(conn, warning: dict[str, Any]) -> tuple[float, float]:
    try:
        facts = area_facts(conn, warning["area_key"], warning["hazard"], warning.get("datastream_id"))
    except (LookupError, NotFound):
        raise InvalidInput(f"warning {warning['id']} has no place on the map; give lon and lat",
                           field="body.lon") from None
    zone = unary_union([Polygon([(lon, lat) for lat, lon in ring]) for ring in facts.polygons])
    point = zone.representative_point()
    return round(point.x, 6), round(point.y, 6)


def queue(conn, *, center: str | None, status: str | None, kind: str | None = None, area_code: str | None = None,
          limit: int = 100, offset: int = 0) -> list[dict[str, Any]]:
    """A center's queue: ``status='open'`` means every status before ``closed``."""
    if status == "open":
        statuses = lifecycle.OPEN_STATES
    elif status:
        if status not in lifecycle.OPEN_STATES + ("closed",):
            raise InvalidInput(f"status must be open or one of {', '.join(lifecycle.OPEN_STATES)}, closed",
                               field="query.status")
        statuses = (status,)
    else:
        statuses = None
    return find_incidents(conn, center=center, statuses=statuses, kind=kind, area_code=area_code,
                          limit=limit, offset=offset)


def with_history(conn, incident_id: int) -> dict[str, Any]:
    incident = get_incident(conn, incident_id)
    kind = incident_kinds().get(incident["kind"])
    return {**incident, "kind_name_ko": kind.name_ko if kind else None, "kind_name_en": kind.name_en if kind else None,
            "allowed_next": list(lifecycle.allowed_next(lifecycle.INCIDENT, incident["status"])),
            "history": events_of(conn, incident_id),
            "dispatches": repository.dispatches_of(conn, incident_id=incident_id)}
