"""Drones: registered with a base, assigned to incidents, reporting telemetry like any sensor.

Each drone is a SensorThings Thing with one Datastream per telemetry property (longitude,
latitude, altitude, battery), so its readings come in through the sensing pipeline — MQTT, HTTP
bulk upload or SensorThings — with the same clock checks, idempotent storage and dead letters.
Its track is read back from those observations.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from haechi.core.clock import as_utc, utcnow
from haechi.core.errors import Conflict, InvalidInput, NotFound
from haechi.model.reading import Reading
from haechi.store import sensing
from haechi.store.incidents import get_incident, record
from haechi.store.places import get_place
from haechi.store.schema import observations

from . import repository

#: Telemetry property → (name, unit name, UCUM symbol, definition).
TELEMETRY = {
    "longitude": ("Longitude (WGS84)", "degree", "deg", "http://qudt.org/vocab/quantitykind/Longitude"),
    "latitude": ("Latitude (WGS84)", "degree", "deg", "http://qudt.org/vocab/quantitykind/Latitude"),
    "altitude": ("Altitude above ground", "metre", "m", "http://qudt.org/vocab/quantitykind/Altitude"),
    "battery_level": ("Battery charge", "percent", "%", "http://qudt.org/vocab/quantitykind/DimensionlessRatio"),
}
#: Telemetry body field → property.
FIELDS = {"lon": "longitude", "lat": "latitude", "altitude_m": "altitude", "battery_pct": "battery_level"}


def register(conn, *, call_sign: str, model: str | None = None, base_place_id: int | None = None,
             base_lon: float | None = None, base_lat: float | None = None) -> dict[str, Any]:
    """A drone, its Thing at its base, a sensor and one datastream per telemetry property."""
    if any(d["call_sign"] == call_sign for d in repository.find_drones(conn)):
        raise Conflict(f"a drone with call sign {call_sign!r} exists", field="body.call_sign")
    base_name = None
    if base_place_id is not None:
        try:
            base = get_place(conn, base_place_id)
        except NotFound:
            raise InvalidInput(f"no place with id {base_place_id}", field="body.base_place_id") from None
        if base["lon"] is None and base_lon is None:
            raise InvalidInput(f"place {base_place_id} has no position; give base_lon and base_lat",
                               field="body.base_lon")
        base_lon = base_lon if base_lon is not None else base["lon"]
        base_lat = base_lat if base_lat is not None else base["lat"]
        base_name = base["name_ko"]
    if base_lon is None or base_lat is None:
        raise InvalidInput("give the base as base_place_id or base_lon and base_lat", field="body.base_lon")
    thing_id, streams = _thing(conn, call_sign, model, base_lon, base_lat, base_name)
    drone_id = repository.add_drone(conn, {
        "call_sign": call_sign, "model": model, "base_place_id": base_place_id, "base_lon": base_lon,
        "base_lat": base_lat, "thing_id": thing_id, "datastreams": streams, "created_at": utcnow()})
    return repository.get_drone(conn, drone_id)


def _thing(conn, call_sign, model, lon, lat, base_name) -> tuple[int, dict[str, int]]:
    sensing.save_observed_properties(conn, [
        {"code": code, "name": name, "definition": definition, "description": f"drone telemetry: {name}"}
        for code, (name, _, _, definition) in TELEMETRY.items()])
    property_ids = sensing.observed_property_ids(conn)
    location_id = sensing.create_location(conn, {
        "name": base_name or f"{call_sign} base", "description": "drone base",
        "location": {"type": "Point", "coordinates": [lon, lat]}})
    thing_id = sensing.create_thing(conn, {
        "name": f"drone {call_sign}", "description": f"드론 {call_sign}" + (f" ({model})" if model else ""),
        "properties": {"kind": "drone", "call_sign": call_sign, "model": model}}, [location_id])
    sensor_id = sensing.create_sensor(conn, {
        "name": f"{call_sign} flight controller", "description": "GNSS position, barometric altitude, battery",
        "encoding_type": "text/html", "metadata": ""})
    streams = {}
    for code, (name, unit_name, symbol, _) in TELEMETRY.items():
        streams[code] = sensing.create_datastream(conn, {
            "name": f"drone {call_sign} {name}", "description": f"드론 {call_sign} {name}", "thing_id": thing_id,
            "sensor_id": sensor_id, "observed_property_id": property_ids[code], "unit_name": unit_name,
            "unit_symbol": symbol, "unit_definition": f"http://unitsofmeasure.org/ucum.html#{symbol}",
            "properties": {"kind": "drone", "call_sign": call_sign}})
    return thing_id, streams


def assign(conn, drone_id: int, incident_id: int | None, *, actor) -> dict[str, Any]:
    """Send a drone to an incident (or back to base with ``None``); the incident's history says so."""
    drone = repository.get_drone(conn, drone_id)
    if incident_id is not None:
        try:
            incident = get_incident(conn, incident_id)
        except NotFound:
            raise InvalidInput(f"no incident with id {incident_id}", field="body.incident_id") from None
        if incident["status"] == "closed":
            raise Conflict(f"incident {incident_id} is closed", field="body.incident_id")
        if drone["incident_id"] not in (None, incident_id):
            raise Conflict(f"drone {drone['call_sign']} is assigned to incident {drone['incident_id']}; "
                           "release it first", field="body.incident_id")
    repository.change_drone(conn, drone_id, {"incident_id": incident_id})
    target = incident_id if incident_id is not None else drone["incident_id"]
    if target is not None:
        record(conn, target, "drone", actor=actor, to_value="assigned" if incident_id else "released",
               note=f"drone {drone['call_sign']} {'assigned' if incident_id else 'released'}",
               detail={"drone_id": drone_id})
    return repository.get_drone(conn, drone_id)


def release_all(conn, incident_id: int, *, actor) -> list[dict[str, Any]]:
    """Every drone assigned to the incident back to base, each release in its history."""
    return [assign(conn, d["id"], None, actor=actor)
            for d in repository.find_drones(conn) if d["incident_id"] == incident_id]


def readings(drone: dict[str, Any], values: dict[str, float | None], at: datetime) -> list[Reading]:
    """One telemetry message as pipeline readings, one per property present."""
    streams = drone["datastreams"]
    return [Reading(int(streams[FIELDS[field]]), at, float(value))
            for field, value in values.items() if field in FIELDS and value is not None]


def track(conn, drone: dict[str, Any], *, since: datetime | None = None, limit: int = 5000) -> dict[str, Any]:
    """The drone's flight as a GeoJSON Feature with a LineString (lon, lat[, altitude]), oldest first.

    Positions need both a longitude and a latitude at the same time, neither flagged bad.
    """
    streams = drone["datastreams"]
    series = {code: _series(conn, int(streams[code]), since, limit) for code in ("longitude", "latitude", "altitude")}
    times = sorted(set(series["longitude"]) & set(series["latitude"]))[-limit:]
    coordinates = []
    for t in times:
        point = [series["longitude"][t], series["latitude"][t]]
        if t in series["altitude"]:
            point.append(series["altitude"][t])
        coordinates.append(point)
    return {
        "type": "Feature",
        "geometry": {"type": "LineString", "coordinates": coordinates} if len(coordinates) >= 2 else
        ({"type": "Point", "coordinates": coordinates[0]} if coordinates else None),
        "properties": {"drone_id": drone["id"], "call_sign": drone["call_sign"], "incident_id": drone["incident_id"],
                       "times": [t.isoformat() for t in times], "points": len(coordinates)},
    }


def _series(conn, datastream_id: int, since: datetime | None, limit: int) -> dict[datetime, float]:
    c = observations.c
    query = select(c.phenomenon_time, c.result).where(c.datastream_id == datastream_id, c.result_quality != "bad")
    if since is not None:
        query = query.where(c.phenomenon_time >= since)
    rows = conn.execute(query.order_by(c.phenomenon_time.desc()).limit(limit)).all()
    return {as_utc(t): v for t, v in rows if v is not None}


def drone_of_streams(conn, datastream_ids: Sequence[int]) -> dict[int, tuple[dict[str, Any], str]]:
    """Which drone and property each of these datastreams reports, for those that are drones'."""
    wanted, found = set(datastream_ids), {}
    for drone in repository.find_drones(conn):
        for code, stream_id in drone["datastreams"].items():
            if int(stream_id) in wanted:
                found[int(stream_id)] = (drone, code)
    return found


def latest_position(conn, drone: dict[str, Any]) -> dict[str, Any] | None:
    streams = drone["datastreams"]
    values = {}
    for code in TELEMETRY:
        latest = _series(conn, int(streams[code]), None, 1)
        if latest:
            [(t, v)] = latest.items()
            values[code] = (t, v)
    if "longitude" not in values or "latitude" not in values:
        return None
    return {"time": max(t for t, _ in values.values()).isoformat(), "lon": values["longitude"][1],
            "lat": values["latitude"][1], "altitude_m": values.get("altitude", (None, None))[1],
            "battery_pct": values.get("battery_level", (None, None))[1]}
