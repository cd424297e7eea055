"""Travel times of units to an incident: the road graph when one is loaded, else an honest estimate.

The estimate is straight-line distance × a circuity (detour) factor ÷ an average speed, both from
``data/response.toml`` with their sources; every answer names the method used.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from haechi.model.geo import haversine_m

from .config import settings

log = logging.getLogger(__name__)

ROAD_GRAPH = "road_graph"
STRAIGHT_LINE = "straight_line"

Point = tuple[float, float]
TravelTimes = Callable[[Sequence[Point], Point], tuple[list[float | None], str]]


def straight_line_s(origin: Point, destination: Point) -> float:
    figures = settings()["travel_estimate"]
    metres = haversine_m(*origin, *destination) * figures["detour_factor"]
    return metres / (figures["speed_kmh"] / 3.6)


def estimate(origins: Sequence[Point], destination: Point) -> tuple[list[float | None], str]:
    return [straight_line_s(o, destination) for o in origins], STRAIGHT_LINE


def travel_times(engine_or_settings: Any, origins: Sequence[Point],
                 destination: Point) -> tuple[list[float | None], str]:
    """Seconds from each origin to the destination, and the method: the road graph if
    ``haechi.roads`` has one loaded, otherwise the straight-line estimate."""
    if not origins:
        return [], STRAIGHT_LINE
    try:
        # Built alongside (issue 9); absent, or answering None, until a road graph is loaded.
        from haechi.roads import service
    except ImportError:
        return estimate(origins, destination)
    try:
        times = service.travel_times(engine_or_settings, list(origins), destination)
    except Exception as exc:  # noqa: BLE001 - no graph loaded, or it failed: say so and estimate
        log.info("road graph unavailable (%s); estimating travel times in straight lines", exc)
        return estimate(origins, destination)
    if times is None or all(t is None for t in times):
        return estimate(origins, destination)
    return list(times), ROAD_GRAPH


def rank_units(units: Sequence[dict[str, Any]], destination: Point, times: TravelTimes) -> dict[str, Any]:
    """Available units with a known position, fastest first; busy units are never candidates.

    A unit the road graph cannot route (``None``) is listed last with no time rather than dropped
    silently, so an operator sees it exists.
    """
    candidates = [u for u in units if u["status"] == "available" and u.get("lon") is not None]
    seconds, method = times([(u["lon"], u["lat"]) for u in candidates], destination)
    ranked = [
        {**u, "travel_s": None if s is None else round(s, 1),
         "distance_m": round(haversine_m(u["lon"], u["lat"], *destination), 1)}
        for u, s in zip(candidates, seconds, strict=True)
    ]
    ranked.sort(key=lambda u: (u["travel_s"] is None, u["travel_s"] or 0, u["call_sign"]))
    return {"method": method, "units": ranked}
