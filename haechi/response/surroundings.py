"""What lies around an incident: cameras that can see it, shelters, hospitals, vulnerable places, people."""

from __future__ import annotations

from math import pi
from typing import Any

from haechi.model.geo import degree_box
from haechi.store import areas, places

from . import repository
from .config import settings
from .geometry import camera_sees

#: District indicators worth knowing about the people around an incident.
PEOPLE = ("population", "age_65_plus", "under_15", "foreigners", "elderly_living_alone", "disabled", "area_km2")


def around(conn, incident: dict[str, Any]) -> dict[str, Any]:
    lon, lat = incident["lon"], incident["lat"]
    radii = settings()["surroundings"]
    return {
        "incident_id": incident["id"],
        "point": {"lon": lon, "lat": lat},
        "cameras": cameras_seeing(conn, lon, lat, radii["cameras_m"]),
        "shelters": _with_detail(conn, places.nearest(conn, lon, lat, kinds=["shelter"], within_m=radii["shelters_m"])),
        "hospitals": _with_detail(conn, places.nearest(conn, lon, lat, kinds=["hospital"],
                                                       within_m=radii["hospitals_m"])),
        "vulnerable": places.nearest(conn, lon, lat, kinds=radii["vulnerable_kinds"], within_m=radii["vulnerable_m"],
                                     limit=50),
        "people": people(conn, incident, radii["vulnerable_m"]),
        "radii_m": {k: v for k, v in radii.items() if k.endswith("_m")},
    }


def cameras_seeing(conn, lon: float, lat: float, within_m: float, limit: int = 20) -> list[dict[str, Any]]:
    """Registered cameras whose view cone holds the point, nearest first."""
    default_range = settings()["cameras"]["default_range_m"]
    seeing = []
    for camera in repository.cameras_in_box(conn, degree_box(lon, lat, within_m)):
        if camera["lon"] is None:
            continue
        view = camera_sees(camera, lon, lat, default_range)
        if view["sees"]:
            seeing.append({**{k: camera[k] for k in ("id", "ref", "name_ko", "name_en", "lon", "lat", "purpose",
                                                     "direction_deg", "fov_deg")}, **view})
    return sorted(seeing, key=lambda c: c["distance_m"])[:limit]


def _with_detail(conn, found: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{**places.get_place(conn, p["id"]), "distance_m": p["distance_m"]} for p in found]


def people(conn, incident: dict[str, Any], radius_m: float) -> dict[str, Any] | None:
    """The district's statistics, and residents within ``radius_m`` estimated at the district's density."""
    code = incident.get("area_code")
    if not code:
        return None
    stats = areas.statistics(conn, code)
    district = areas.get_area(conn, code, geometry=False)
    area_km2 = (stats.get("area_km2") or {}).get("value") or district.get("area_km2")
    population = (stats.get("population") or {}).get("value")
    estimate = None
    if population and area_km2:
        circle_km2 = pi * (radius_m / 1000) ** 2
        estimate = {"radius_m": radius_m, "residents": round(population / area_km2 * circle_km2),
                    "method": "district population density × circle area (residents, not the daytime population)"}
    return {"area_code": code, "name_ko": district["name_ko"], "name_en": district["name_en"],
            "statistics": {k: v for k, v in stats.items() if k in PEOPLE}, "estimate": estimate}
