"""The monitoring network on the map: every station with its newest reading per property, in one answer."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from haechi.cities.provision import station_plan, station_streams
from haechi.model.city import PlaceKind

from .common import API_PREFIX, Db
from .problems import PROBLEM_RESPONSES
from .public_cache import FEED, share

router = APIRouter(prefix=API_PREFIX, tags=["sensing"], responses=PROBLEM_RESPONSES)


class Reading(BaseModel):
    result: float
    phenomenon_time: str
    quality: str = Field(description="good · suspect · bad")
    silent: bool = Field(description="No reading for three expected intervals")


class Station(BaseModel):
    id: int = Field(description="The place's id")
    kind: str
    ref: str = Field(description="The publisher's id: AirKorea station name, KMA station number, S-DoT serial…")
    name_ko: str
    name_en: str | None
    area_code: str | None = Field(description="The dong (or district) the station lies in")
    lon: float | None
    lat: float | None
    streams: dict[str, int] = Field(description="Datastream id per observed property (the stream's events name it)")
    latest: dict[str, Reading] = Field(description="Newest reading per observed property; absent before the first")


class PropertyInfo(BaseModel):
    name_ko: str
    name_en: str
    unit: str


class StationLayer(BaseModel):
    properties: dict[str, PropertyInfo] = Field(description="The observed properties the stations measure")
    counts: dict[str, int] = Field(description="Stations per kind")
    sources: dict[str, list[str]] = Field(description="Where each kind's stations come from (credit them)")
    stations: list[Station]


@router.get("/stations", response_model=StationLayer, summary="Monitoring network · 관측망 현황")
def station_layer(
    request: Request, engine: Db,
    kind: Annotated[list[PlaceKind] | None, Query(description="Only these station kinds (repeat for several)")] = None,
) -> dict[str, Any]:
    """Every station of the loaded city (air, weather, S-DoT, gauges…) with its location, district and the newest
    reading of each of its datastreams, from memory: the map's station layer in one request. Public and shared
    by caches for 10 s; the live stream's `observation` events (by datastream id) keep a map current after it."""
    plan = station_plan()
    kinds = [k.value for k in kind if k.value in plan] if kind else list(plan)
    with engine.connect() as conn:
        stations = station_streams(conn, kinds) if kinds else []
    pipeline = getattr(request.app.state, "pipeline", None)
    now, silent = (pipeline.state.streams, pipeline.state.silent) if pipeline else ({}, set())
    counts: dict[str, int] = {}
    sources: dict[str, list[str]] = {}
    for station in stations:
        counts[station["kind"]] = counts.get(station["kind"], 0) + 1
        source = station.pop("source")  # said once per kind, not 900 times
        if source and source not in sources.setdefault(station["kind"], []):
            sources[station["kind"]].append(source)
        station["latest"] = {code: _reading(now[i], i in silent) for code, i in station["streams"].items() if i in now}
    # the short names of stations.csv ("PM10", "미세먼지"), made for labels; the first kind's wording wins
    names = {row["property"]: row for k in reversed(kinds) for row in plan[k]}
    share(request, FEED)
    properties = {code: {"name_ko": r["name_ko"], "name_en": r["name_en"], "unit": r["unit"]}
                  for code, r in sorted(names.items())}
    return {"properties": properties, "counts": counts, "sources": sources, "stations": stations}


def _reading(now, silent: bool) -> dict[str, Any]:
    return {"result": now.result, "phenomenon_time": now.phenomenon_time.isoformat(), "quality": now.quality,
            "silent": silent}
