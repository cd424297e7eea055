"""Active warnings as geometries for the geofence (warnings table + ``cities/targeting.py``)."""

from __future__ import annotations

import logging
from typing import Any

from shapely.geometry import Polygon, shape
from shapely.ops import unary_union
from sqlalchemy import Connection, select

from haechi.cities.targeting import area_facts
from haechi.core.errors import NotFound
from haechi.store import areas
from haechi.store.schema import warnings

from .geofence import HazardArea

log = logging.getLogger(__name__)


def active_warnings(conn: Connection) -> list[dict[str, Any]]:
    query = select(warnings).where(warnings.c.status == "active").order_by(warnings.c.id)
    return [dict(r._mapping) for r in conn.execute(query)]


def hazard_areas(conn: Connection, cache: dict[tuple[int, str], HazardArea] | None = None) -> list[HazardArea]:
    """Every active warning's area; ``cache`` (by warning id and key) spares recomputing shapes."""
    found = []
    active = active_warnings(conn)
    if cache is not None:  # forget the shapes of warnings no longer active
        for key in set(cache) - {(w["id"], w["area_key"]) for w in active}:
            del cache[key]
    for w in active:
        key = (w["id"], w["area_key"])
        if cache is not None and key in cache:
            found.append(cache[key])
            continue
        try:
            geometry = warning_geometry(conn, w)
        except (LookupError, NotFound) as exc:
            log.warning("warning %s (%s) has no shape on the map: %s", w["id"], w["area_key"], exc)
            continue
        except Exception:  # a shape we cannot build must not stop the care service
            log.exception("warning %s (%s): building its area failed", w["id"], w["area_key"])
            continue
        area = HazardArea(w["id"], w["hazard"], w["level"], geometry)
        if cache is not None:
            cache[key] = area
        found.append(area)
    return found


def warning_geometry(conn: Connection, warning: dict[str, Any]):
    kind, _, ref = warning["area_key"].partition(":")
    if kind in ("district", "dong"):
        return shape(areas.get_area(conn, ref)["geometry"])
    facts = area_facts(conn, warning["area_key"], warning["hazard"], warning.get("datastream_id"))
    return unary_union([Polygon([(lon, lat) for lat, lon in ring]) for ring in facts.polygons])
