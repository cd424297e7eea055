"""Small pure geodesy helpers (WGS84 lon/lat in degrees, distances in metres)."""

from __future__ import annotations

from math import asin, cos, radians, sin, sqrt

import numpy as np
import shapely
from pyproj import Transformer
from shapely.geometry.base import BaseGeometry

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius
#: Korea 2000 / Unified CS (UTM-K, EPSG:5179): where metric work (buffers, lengths, areas) is done.
TO_METRES = Transformer.from_crs("EPSG:4326", "EPSG:5179", always_xy=True)
TO_DEGREES = Transformer.from_crs("EPSG:5179", "EPSG:4326", always_xy=True)


def transform(transformer: Transformer, geometry: BaseGeometry) -> BaseGeometry:
    """``geometry`` in the transformer's target coordinates."""
    return shapely.transform(
        geometry, lambda xy: np.column_stack(transformer.transform(xy[:, 0], xy[:, 1])))


def haversine_m(lon1: float, lat1: float, lon2: float, lat2: float) -> float:
    """Great-circle distance in metres; within 0.5 % of the ellipsoid over a city."""
    dlat, dlon = radians(lat2 - lat1), radians(lon2 - lon1)
    a = sin(dlat / 2) ** 2 + cos(radians(lat1)) * cos(radians(lat2)) * sin(dlon / 2) ** 2
    return 2 * EARTH_RADIUS_M * asin(sqrt(a))


def degree_box(lon: float, lat: float, radius_m: float) -> tuple[float, float, float, float]:
    """A (min_lon, min_lat, max_lon, max_lat) box that contains the circle of ``radius_m``."""
    dlat = radius_m / 111_000
    dlon = radius_m / (111_000 * max(cos(radians(lat)), 0.01))
    return lon - dlon, lat - dlat, lon + dlon, lat + dlat


def parse_bbox(text: str) -> tuple[float, float, float, float]:
    """``"w,s,e,n"`` in WGS84 degrees → a tuple; ValueError saying what was expected."""
    parts = text.split(",")
    try:
        w, s, e, n = (float(p) for p in parts)
    except ValueError:
        raise ValueError(f"bbox must be four numbers w,s,e,n; got {text!r}") from None
    if not (-180 <= w < e <= 180 and -90 <= s < n <= 90):
        raise ValueError(
            "bbox must satisfy -180 ≤ w < e ≤ 180 and -90 ≤ s < n ≤ 90 (WGS84 degrees)"
        )
    return w, s, e, n
