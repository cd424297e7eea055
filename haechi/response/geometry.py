"""Pure geometry around an incident: bearings and whether a camera's view cone holds a point."""

from __future__ import annotations

from math import atan2, cos, degrees, radians, sin

from haechi.model.geo import haversine_m


def bearing_deg(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Initial great-circle bearing from point 1 to point 2, clockwise from north, in [0, 360)."""
    phi1, phi2, dlon = radians(lat1), radians(lat2), radians(lon2 - lon1)
    x = sin(dlon) * cos(phi2)
    y = cos(phi1) * sin(phi2) - sin(phi1) * cos(phi2) * cos(dlon)
    return degrees(atan2(x, y)) % 360


def angle_between(a: float, b: float) -> float:
    """The smaller angle between two bearings, in [0, 180]."""
    d = abs(a - b) % 360
    return 360 - d if d > 180 else d


def camera_sees(camera: dict, lon: float, lat: float, default_range_m: float) -> dict:
    """Whether a camera's view cone (position, direction, field of view, range) holds the point.

    A camera without a recorded direction or field of view is taken as turning (PTZ): it may see
    all round, and the answer says the direction was unknown.
    """
    distance = haversine_m(camera["lon"], camera["lat"], lon, lat)
    reach = camera.get("range_m") or default_range_m
    direction, fov = camera.get("direction_deg"), camera.get("fov_deg")
    bearing = bearing_deg(camera["lon"], camera["lat"], lon, lat)
    if direction is None or fov is None:
        in_cone = True
        off_axis = None
    else:
        off_axis = angle_between(bearing, direction)
        # A point on top of the camera is in view whichever way it faces.
        in_cone = distance < 1 or off_axis <= fov / 2
    return {
        "sees": distance <= reach and in_cone,
        "distance_m": round(distance, 1),
        "bearing_deg": round(bearing, 1),
        "off_axis_deg": None if off_axis is None else round(off_axis, 1),
        "range_m": reach,
        "direction_known": direction is not None and fov is not None,
    }
