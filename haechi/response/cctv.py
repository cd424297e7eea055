"""CCTV analytics events (smoke/fire, fall, intrusion, crowd density) posted by camera systems.

An event is checked in full before anything is stored: the camera must be in the registry, the
coordinates valid and within the camera's reach, the type known, the time neither stale nor in
the future, and the camera system's event id new (a resend is a replay). A refused event is
kept in the dead-letter store with its reason. An accepted smoke/fire event opens a fire
incident owned by the CCTV center, or attaches to an open one nearby; a crowd density at the
danger level opens a crowd-crush-risk incident the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from haechi.core.clock import as_utc
from haechi.core.errors import Conflict, InvalidInput
from haechi.model.access import Center
from haechi.model.geo import haversine_m
from haechi.store.incidents import open_incidents_of_kind, record

from . import incidents, lifecycle, repository
from .config import settings

EVENT_TYPES = ("smoke_fire", "fall", "intrusion", "crowd_density")
#: What each event type opens when accepted (None: recorded and shown, no incident by itself).
OPENS = {"smoke_fire": "fire", "crowd_density": "crowd_crush_risk"}
FIELDS = ("event_id", "camera_id", "camera_ref", "type", "observed_at", "lon", "lat", "confidence", "density", "detail")


@dataclass(frozen=True, slots=True)
class CheckedEvent:
    event_id: str
    camera: dict[str, Any]
    type: str
    observed_at: datetime
    lon: float
    lat: float
    confidence: float | None
    density: float | None
    detail: dict[str, Any] | None


def check(body: Any, camera_of, now: datetime) -> CheckedEvent:
    """Validate one event (pure but for ``camera_of(id=, ref=)``, the registry lookup)."""
    if not isinstance(body, dict):
        raise InvalidInput("the body must be one JSON object describing the event", field="body")
    unknown = sorted(set(body) - set(FIELDS))
    if unknown:
        raise InvalidInput(f"unknown field {unknown[0]!r}; the fields are {', '.join(FIELDS)}",
                           field=f"body.{unknown[0]}")
    event_id = body.get("event_id")
    if not isinstance(event_id, str) or not 1 <= len(event_id.strip()) <= 100:
        raise InvalidInput("event_id must be the camera system's own id for the event (1–100 characters)",
                           field="body.event_id")
    camera = _camera(body, camera_of)
    kind = body.get("type")
    if kind not in EVENT_TYPES:
        raise InvalidInput(f"type must be one of {', '.join(EVENT_TYPES)}, not {kind!r}", field="body.type")
    observed_at = _moment(body.get("observed_at"), now)
    lon, lat = _where(body, camera)
    confidence = _fraction(body.get("confidence"))
    density = _density(kind, body.get("density"))
    detail = body.get("detail")
    if detail is not None and not isinstance(detail, dict):
        raise InvalidInput("detail must be a JSON object", field="body.detail")
    return CheckedEvent(event_id.strip(), camera, kind, observed_at, lon, lat, confidence, density, detail)


def _camera(body: dict, camera_of) -> dict[str, Any]:
    camera_id, ref = body.get("camera_id"), body.get("camera_ref")
    if camera_id is None and ref is None:
        raise InvalidInput("give the camera as camera_id (registry place id) or camera_ref", field="body.camera_id")
    if camera_id is not None and (isinstance(camera_id, bool) or not isinstance(camera_id, int)):
        raise InvalidInput("camera_id must be an integer place id", field="body.camera_id")
    found = camera_of(place_id=camera_id) if camera_id is not None else camera_of(ref=str(ref))
    if found is None:
        field, value = ("camera_id", camera_id) if camera_id is not None else ("camera_ref", ref)
        raise InvalidInput(f"no camera {value!r} in the CCTV registry", field=f"body.{field}")
    if found["lon"] is None:
        raise InvalidInput(f"camera {found['ref']!r} has no position in the registry", field="body.camera_id")
    return found


def _moment(value: Any, now: datetime) -> datetime:
    if not isinstance(value, str):
        raise InvalidInput("observed_at must be an ISO 8601 time with its offset", field="body.observed_at")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise InvalidInput(f"observed_at {value!r} is not an ISO 8601 time", field="body.observed_at") from None
    if moment.tzinfo is None:
        raise InvalidInput("observed_at needs its UTC offset (e.g. +09:00): a bare time is ambiguous",
                           field="body.observed_at")
    moment = as_utc(moment)
    limits = settings()["cctv_events"]
    if moment < now - timedelta(seconds=limits["max_age_s"]):
        raise InvalidInput(f"observed_at {value} is more than {limits['max_age_s']} s old: a replay or a stale "
                           "uplink, refused", field="body.observed_at")
    if moment > now + timedelta(seconds=limits["max_future_s"]):
        raise InvalidInput(f"observed_at {value} is more than {limits['max_future_s']} s in the future: "
                           "check the camera system's clock", field="body.observed_at")
    return moment


def _where(body: dict, camera: dict[str, Any]) -> tuple[float, float]:
    """The event's point: given, or the camera's own; given points must lie within the camera's reach."""
    lon, lat = body.get("lon"), body.get("lat")
    if lon is None and lat is None:
        return camera["lon"], camera["lat"]
    if (lon is None) != (lat is None):
        raise InvalidInput("give lon and lat together, or neither (the camera's position is used)",
                           field="body.lat" if lat is None else "body.lon")
    incidents._check_point(lon, lat, prefix="body.")
    reach = camera.get("range_m") or settings()["cameras"]["default_range_m"]
    distance = haversine_m(camera["lon"], camera["lat"], lon, lat)
    # The analytics locate things in the picture; a point beyond the camera's range is a bad fix.
    if distance > reach * 2:
        raise InvalidInput(f"the event lies {distance:.0f} m from camera {camera['ref']!r}, beyond twice its "
                           f"{reach:g} m range", field="body.lon")
    return float(lon), float(lat)


def _fraction(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= 1:
        raise InvalidInput("confidence must be a number from 0 to 1", field="body.confidence")
    return float(value)


def _density(kind: str, value: Any) -> float | None:
    limit = settings()["crowd"]["max_per_m2"]
    if kind != "crowd_density":
        if value is not None:
            raise InvalidInput("density belongs to crowd_density events only", field="body.density")
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value <= limit:
        raise InvalidInput(f"a crowd_density event needs density in persons per m², from 0 to {limit:g}",
                           field="body.density")
    return float(value)


def accept(conn, body: Any, *, now: datetime, actor: str) -> tuple[dict[str, Any], dict[str, Any] | None, bool]:
    """Check and store an event; returns (stored event, incident opened or attached to, opened?).

    Raises InvalidInput/Conflict for a refused event; the caller keeps it as a dead letter.
    """
    event = check(body, lambda **key: repository.camera(conn, **key), now)
    if repository.cctv_event_seen(conn, event.event_id):
        raise Conflict(f"event {event.event_id!r} was already received: a replay, refused", field="body.event_id")
    incident, opened = _incident_for(conn, event, actor)
    row_id = repository.add_cctv_event(conn, {
        "event_id": event.event_id, "camera_place_id": event.camera["id"], "event_type": event.type,
        "observed_at": event.observed_at, "received_at": now, "lon": event.lon, "lat": event.lat,
        "confidence": event.confidence, "density": event.density,
        "incident_id": incident["id"] if incident else None, "payload": body})
    if incident is not None:
        record(conn, incident["id"], "cctv_event", actor=actor,
               note=f"{event.type} seen by camera {event.camera['ref']}",
               detail={"cctv_event_id": row_id, "event_id": event.event_id, "density": event.density})
    return repository.get_cctv_event(conn, row_id), incident, opened


def _incident_for(conn, event: CheckedEvent, actor: str) -> tuple[dict[str, Any] | None, bool]:
    kind = OPENS.get(event.type)
    if kind is None:
        return None, False
    if kind == "crowd_crush_risk" and event.density < settings()["crowd"]["danger_per_m2"]:
        return None, False
    nearby = _open_nearby(conn, kind, event.lon, event.lat)
    if nearby is not None:
        return nearby, False
    name = event.camera["name_ko"]
    title = {"fire": f"CCTV 연기·화재 감지 — {name}", "crowd_crush_risk": f"CCTV 인파 밀집 위험 — {name}"}[kind]
    incident = incidents._open(
        conn, kind=kind, lon=event.lon, lat=event.lat, title=title, severity="high", center=Center.CCTV.value,
        source="cctv", detail={"camera_ref": event.camera["ref"], "confidence": event.confidence,
                               "density": event.density}, actor=actor, source_ref=f"cctv:{event.event_id}")
    return incident, True


def _open_nearby(conn, kind: str, lon: float, lat: float) -> dict[str, Any] | None:
    radius = settings()["cctv_events"]["attach_radius_m"]
    best = None
    for incident in open_incidents_of_kind(conn, kind, lifecycle.OPEN_STATES):
        if incident["lon"] is None:
            continue
        d = haversine_m(lon, lat, incident["lon"], incident["lat"])
        if d <= radius and (best is None or d < best[0]):
            best = (d, incident)
    return best[1] if best else None


