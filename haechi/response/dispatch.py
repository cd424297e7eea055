"""119 units and dispatch: the unit lifecycle, recommendations by travel time, arrivals and the golden time."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from haechi.core.clock import utcnow
from haechi.core.errors import Conflict, InvalidInput, NotFound
from haechi.store.incidents import actor_name, get_incident, record
from haechi.store.places import get_place

from . import lifecycle, repository
from .config import golden_time_s, settings
from .status import move_incident
from .travel import TravelTimes, rank_units

UNIT_TYPES = ("pumper", "tanker", "ladder", "rescue", "ambulance", "command", "hazmat", "other")


def add_unit(conn, *, call_sign: str, unit_type: str, station_place_id: int,
             lon: float | None = None, lat: float | None = None) -> dict[str, Any]:
    if unit_type not in UNIT_TYPES:
        raise InvalidInput(f"unit_type must be one of {', '.join(UNIT_TYPES)}", field="body.unit_type")
    try:
        station = get_place(conn, station_place_id)
    except NotFound:
        raise InvalidInput(f"no place with id {station_place_id}", field="body.station_place_id") from None
    if station["kind"] != "fire_station":
        raise InvalidInput(f"place {station_place_id} is a {station['kind']}, not a fire_station",
                           field="body.station_place_id")
    if any(u["call_sign"] == call_sign for u in repository.find_units(conn)):
        raise Conflict(f"a unit with call sign {call_sign!r} exists", field="body.call_sign")
    unit_id = repository.add_unit(conn, {
        "call_sign": call_sign, "unit_type": unit_type, "station_place_id": station_place_id,
        "status": "available", "lon": lon, "lat": lat, "status_changed_at": utcnow()})
    return unit(conn, unit_id)


def unit(conn, unit_id: int) -> dict[str, Any]:
    repository.get_unit(conn, unit_id)  # 404 for an unknown id
    [found] = [u for u in repository.find_units(conn) if u["id"] == unit_id]
    open_dispatch = repository.dispatches_of(conn, unit_id=unit_id, open_only=True)
    return {**found, "incident_id": open_dispatch[-1]["incident_id"] if open_dispatch else None}


def move_unit(conn, unit_id: int, status: str, *, actor, lon: float | None = None, lat: float | None = None,
              now: datetime | None = None) -> dict[str, Any]:
    """Change a unit's status along its lifecycle (409 naming the allowed next ones); optionally its position.

    Going ``returning`` or ``available`` clears the unit's open dispatch; ``on_scene`` records the
    arrival of its open dispatch (response time, golden time).
    """
    now = now or utcnow()
    current = repository.get_unit(conn, unit_id, for_update=True)
    lifecycle.check(lifecycle.UNIT, current["status"], status)
    if status == "dispatched":
        raise Conflict("a unit is dispatched to an incident: POST /api/v1/incidents/{id}/dispatch", field="body.status")
    values: dict[str, Any] = {"status": status, "status_changed_at": now}
    if lon is not None:
        values |= {"lon": lon, "lat": lat}
    if not repository.change_unit(conn, unit_id, values, was_status=current["status"]):
        raise Conflict(f"unit {current['call_sign']} changed status meanwhile; reload and try again",
                       field="body.status")
    for d in repository.dispatches_of(conn, unit_id=unit_id, open_only=True):
        if status == "on_scene":
            _arrive(conn, d, now, actor)
        elif status in ("returning", "available"):
            repository.change_dispatch(conn, d["id"], {"cleared_at": now})
            record(conn, d["incident_id"], "unit", actor=actor, from_value=current["status"],
                   to_value=status, note=f"{current['call_sign']} {status}")
    return unit(conn, unit_id)


def release_units(conn, incident_id: int, *, actor, now: datetime | None = None,
                  reason: str = "incident closed") -> list[dict[str, Any]]:
    """Units still sent to an incident go back into service: each walks its lifecycle to ``available``
    (from ``on_scene``: returning, then available), every step in the incident's history as an
    operator's move would be, and its dispatch is cleared. Returns the units as they are now."""
    now = now or utcnow()
    released = []
    for d in repository.dispatches_of(conn, incident_id=incident_id, open_only=True):
        found = repository.get_unit(conn, d["unit_id"], for_update=True)
        was = found["status"]
        for status in lifecycle.path(lifecycle.UNIT, was, "available"):
            if not repository.change_unit(conn, found["id"], {"status": status, "status_changed_at": now},
                                          was_status=was):
                raise Conflict(f"unit {found['call_sign']} changed status meanwhile; reload and try again",
                               field="body.status")
            record(conn, incident_id, "unit", actor=actor, from_value=was, to_value=status,
                   note=f"{found['call_sign']} {status} ({reason})")
            was = status
        repository.change_dispatch(conn, d["id"], {"cleared_at": now})
        released.append(unit(conn, found["id"]))
    return released


def set_position(conn, unit_id: int, lon: float, lat: float) -> dict[str, Any]:
    repository.get_unit(conn, unit_id)
    repository.change_unit(conn, unit_id, {"lon": lon, "lat": lat})
    return unit(conn, unit_id)


def recommend(conn, incident_id: int, times: TravelTimes, *, limit: int = 10) -> dict[str, Any]:
    """Available units ranked by travel time to the incident; busy units are never listed."""
    incident = get_incident(conn, incident_id)
    if incident["lon"] is None:
        raise Conflict(f"incident {incident_id} has no location to route to")
    ranked = rank_units(repository.find_units(conn, status="available"), (incident["lon"], incident["lat"]), times)
    target = golden_time_s(incident["kind"])
    for u in ranked["units"]:
        u["within_golden_time"] = None if target is None or u["travel_s"] is None else u["travel_s"] <= target
    method = ranked["method"]
    source = settings()["travel_estimate"]["source"] if method == "straight_line" else "road graph (haechi.roads)"
    return {"incident_id": incident_id, "method": method, "method_source": source, "golden_time_s": target,
            "units": ranked["units"][:limit]}


def dispatch(conn, incident_id: int, unit_ids: Sequence[int], times: TravelTimes, *, actor,
             now: datetime | None = None) -> list[dict[str, Any]]:
    """Send units to an incident: each must be free to go (available, or returning); the incident
    moves to ``responding`` if it was not yet; every dispatch is in its history."""
    now = now or utcnow()
    incident = get_incident(conn, incident_id, for_update=True)
    if incident["status"] in ("closed",):
        raise Conflict(f"incident {incident_id} is closed; units cannot be sent to it", field="body.unit_ids")
    if len(set(unit_ids)) != len(unit_ids):
        raise InvalidInput("a unit is listed twice", field="body.unit_ids")
    units = []
    for unit_id in unit_ids:
        try:
            found = repository.get_unit(conn, unit_id, for_update=True)
        except NotFound:
            raise InvalidInput(f"no fire unit with id {unit_id}", field="body.unit_ids") from None
        lifecycle.check(lifecycle.UNIT, found["status"], "dispatched", field="body.unit_ids")
        units.append(found)
    positions = {u["id"]: u for u in repository.find_units(conn)}
    origins = [(positions[u["id"]]["lon"], positions[u["id"]]["lat"]) for u in units]
    known = [o for o in origins if o[0] is not None]
    seconds, method = times(known, (incident["lon"], incident["lat"])) if known else ([], None)
    estimates = iter(seconds)
    made = []
    for u, origin in zip(units, origins, strict=True):
        estimate = next(estimates) if origin[0] is not None else None
        dispatch_id = repository.add_dispatch(conn, {
            "incident_id": incident_id, "unit_id": u["id"], "dispatched_at": now, "estimate_s": estimate,
            "estimate_method": method if estimate is not None else None,
            "golden_time_s": golden_time_s(incident["kind"]),
            "dispatched_by": actor_name(actor)})
        # Only if still in the state we checked: two operators cannot send the same unit twice.
        if not repository.change_unit(conn, u["id"], {"status": "dispatched", "status_changed_at": now},
                                      was_status=u["status"]):
            raise Conflict(f"unit {u['call_sign']} changed status meanwhile; reload and try again",
                           field="body.unit_ids")
        record(conn, incident_id, "dispatch", actor=actor, from_value=u["status"], to_value="dispatched",
               note=f"{u['call_sign']} dispatched",
               detail={"dispatch_id": dispatch_id, "unit_id": u["id"], "estimate_s": estimate,
                       "method": method})
        made.append(repository.get_dispatch(conn, dispatch_id))
    if incident["status"] in ("reported", "verified", "contained"):
        move_incident(conn, incident_id, "responding", actor=actor, note="units dispatched")
    return made


#: How far ahead of the server's clock a unit's own clock may be when it reports arrival.
ARRIVAL_CLOCK_SKEW = timedelta(seconds=60)


def arrive(conn, incident_id: int, dispatch_id: int, *, actor, at: datetime | None = None) -> dict[str, Any]:
    """Record a unit's arrival on scene: its response time and whether it met the golden time."""
    d = repository.get_dispatch(conn, dispatch_id)
    if d["incident_id"] != incident_id:
        raise NotFound(f"dispatch {dispatch_id} does not belong to incident {incident_id}")
    u = repository.get_unit(conn, d["unit_id"], for_update=True)
    lifecycle.check(lifecycle.UNIT, u["status"], "on_scene", field="path.dispatch_id")
    if d["arrived_at"] is not None or d["cleared_at"] is not None:
        raise Conflict(f"dispatch {dispatch_id} is already over (arrived or cleared)", field="path.dispatch_id")
    now = utcnow()
    at = at or now
    if at < d["dispatched_at"]:
        raise InvalidInput("the arrival cannot be before the dispatch", field="body.arrived_at")
    if at > now + ARRIVAL_CLOCK_SKEW:  # a future arrival would make the golden-time verdict up
        raise InvalidInput("the arrival cannot be in the future", field="body.arrived_at")
    if not repository.change_unit(conn, u["id"], {"status": "on_scene", "status_changed_at": at},
                                  was_status=u["status"]):
        raise Conflict(f"unit {u['call_sign']} changed status meanwhile; reload and try again",
                       field="path.dispatch_id")
    return _arrive(conn, d, at, actor)


def _arrive(conn, d: dict[str, Any], at: datetime, actor) -> dict[str, Any]:
    response_s = (at - d["dispatched_at"]).total_seconds()
    met = None if d["golden_time_s"] is None else response_s <= d["golden_time_s"]
    repository.change_dispatch(conn, d["id"], {"arrived_at": at, "response_s": response_s, "met_golden_time": met})
    record(conn, d["incident_id"], "arrival", actor=actor, to_value="on_scene",
           note=f"{d.get('call_sign') or d['unit_id']} on scene after {response_s:.0f} s",
           detail={"dispatch_id": d["id"], "response_s": response_s, "met_golden_time": met})
    return repository.get_dispatch(conn, d["id"])


def response_times(rows: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Summary of arrivals (pure): count, median and 90th percentile, share within the golden time."""
    seconds = sorted(r["response_s"] for r in rows)
    judged = [r["met_golden_time"] for r in rows if r["met_golden_time"] is not None]
    figures = settings()["golden_time"]
    return {
        "arrivals": len(seconds),
        "median_s": statistics.median(seconds) if seconds else None,
        "p90_s": _percentile(seconds, 0.9) if seconds else None,
        "within_golden_time": sum(judged),
        "judged": len(judged),
        "within_golden_time_share": round(sum(judged) / len(judged), 4) if judged else None,
        "golden_time_min": {k[:-4]: v for k, v in figures.items() if k.endswith("_min")},
        "golden_time_source": figures["source"],
        "rows": list(rows),
    }


def _percentile(sorted_values: Sequence[float], q: float) -> float:
    """Linear-interpolated percentile of sorted values (numpy's default method)."""
    position = (len(sorted_values) - 1) * q
    low = int(position)
    high = min(low + 1, len(sorted_values) - 1)
    return sorted_values[low] + (sorted_values[high] - sorted_values[low]) * (position - low)
