"""Giving the city's stations their SensorThings entities, so their readings have somewhere to go.

Each monitoring place of a city pack (river gauges, dams, tide, weather, air and S-DoT stations) becomes a
Thing at a Location with one Datastream per property it measures (``stations.csv``). Idempotent:
a place that already has its Thing, or a Thing that already has the datastream, is left alone.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from pathlib import Path

from sqlalchemy import Connection, insert, select

from haechi.model.catalogue import catalogue
from haechi.store import sensing
from haechi.store.schema import datastreams, locations, observed_properties, places, thing_locations, things

STATIONS = Path(__file__).with_name("stations.csv")


def save_catalogue(conn: Connection) -> dict[str, int]:
    """The observed-property catalogue as SensorThings ObservedProperties; returns code → id."""
    sensing.save_observed_properties(conn, [
        {"code": p.code, "name": p.name_en, "definition": p.definition,
         "description": f"{p.name_ko} ({p.unit_symbol})"} for p in catalogue().values()])
    return sensing.observed_property_ids(conn)


def station_plan() -> dict[str, list[dict[str, str]]]:
    """What each kind of station measures (``stations.csv``): place kind → its property rows."""
    plan: dict[str, list[dict[str, str]]] = {}
    with open(STATIONS, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            plan.setdefault(row["place_kind"], []).append(row)
    return plan


def provision_stations(conn: Connection, place_ids: Iterable[int] | None = None) -> int:
    """Create the missing Things and Datastreams of every station place (or of these places, those
    of a station kind: a place saved over the API); returns datastreams created.

    In bulk (a city has about a thousand stations): one query for what exists, one insert per table.
    """
    plan = station_plan()
    property_ids = save_catalogue(conn)
    query = select(places).where(places.c.kind.in_(list(plan))).order_by(places.c.id)
    if place_ids is not None:
        query = query.where(places.c.id.in_(sorted(set(place_ids))))
    stations = conn.execute(query).all()
    thing_of: dict[int, int] = {}
    for place_id, thing_id in conn.execute(select(things.c.place_id, things.c.id)
                                           .where(things.c.place_id.is_not(None)).order_by(things.c.id)):
        thing_of.setdefault(place_id, thing_id)
    thing_of |= _create_things(conn, [p for p in stations if p.id not in thing_of])
    have = {tuple(r) for r in conn.execute(select(datastreams.c.thing_id, datastreams.c.observed_property_id))}
    rows = [_datastream(place, wanted, thing_of[place.id], property_ids[wanted["property"]])
            for place in stations for wanted in plan[place.kind]
            if (thing_of[place.id], property_ids[wanted["property"]]) not in have]
    if rows:
        sensor_id = sensing.create_sensor(conn, {
            "name": "station instrument",
            "description": "The station's own instrument, as its publisher reports it",
            "encoding_type": "text/html", "metadata": ""})
        conn.execute(insert(datastreams), [r | {"sensor_id": sensor_id} for r in rows])
    return len(rows)


def _datastream(place, wanted: dict[str, str], thing_id: int, property_id: int) -> dict:
    return {
        "name": f"{place.name_en or place.name_ko} {wanted['name_en']}",
        "description": f"{place.name_ko} {wanted['name_ko']}",
        "thing_id": thing_id, "observed_property_id": property_id,
        "unit_name": catalogue()[wanted["property"]].unit_name, "unit_symbol": wanted["unit"],
        "unit_definition": f"http://unitsofmeasure.org/ucum.html#{wanted['unit']}",
        "area_code": place.area_code[:5] if place.area_code else None,
        "properties": {"place_kind": place.kind, "place_ref": place.ref},
    }


def _inserted_ids(conn: Connection, table, rows: list[dict]) -> list[int]:
    """Insert ``rows`` in one statement; their new ids, in the rows' order."""
    if not rows:
        return []
    return list(conn.execute(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows).scalars())


def _create_things(conn: Connection, stations: list) -> dict[int, int]:
    """A Thing (at its Location, when the place has coordinates) for each place; place id → thing id."""
    located = [p for p in stations if p.lon is not None]
    location_ids = _inserted_ids(conn, locations, [{
        "name": p.name_ko, "description": p.address or p.name_ko, "lon": p.lon, "lat": p.lat,
        "location": {"type": "Point", "coordinates": [p.lon, p.lat]}} for p in located])
    thing_ids = _inserted_ids(conn, things, [{
        "name": p.name_en or p.name_ko, "description": p.name_ko, "place_id": p.id,
        "properties": {"kind": p.kind, "ref": p.ref, "source": p.source}} for p in stations])
    thing_of = {p.id: t for p, t in zip(stations, thing_ids, strict=True)}
    if location_ids:
        conn.execute(insert(thing_locations), [{"thing_id": thing_of[p.id], "location_id": loc}
                                               for p, loc in zip(located, location_ids, strict=True)])
    return thing_of


def station_streams(conn: Connection, kinds: list[str] | None = None) -> list[dict]:
    """Every station place with its datastream id per property code, in one query (the map's station layer)."""
    wanted = kinds or list(station_plan())
    joined = (places.outerjoin(things, things.c.place_id == places.c.id)
              .outerjoin(datastreams, datastreams.c.thing_id == things.c.id)
              .outerjoin(observed_properties, observed_properties.c.id == datastreams.c.observed_property_id))
    query = (select(places.c.id, places.c.kind, places.c.ref, places.c.name_ko, places.c.name_en,
                    places.c.area_code, places.c.lon, places.c.lat, places.c.source, observed_properties.c.code,
                    datastreams.c.id)
             .select_from(joined).where(places.c.kind.in_(wanted)).order_by(places.c.id, datastreams.c.id))
    stations: dict[int, dict] = {}
    for place_id, kind, ref, name_ko, name_en, area_code, lon, lat, source, code, stream_id in conn.execute(query):
        station = stations.setdefault(place_id, {
            "id": place_id, "kind": kind, "ref": ref, "name_ko": name_ko, "name_en": name_en,
            "area_code": area_code, "lon": lon, "lat": lat, "source": source, "streams": {}})
        if stream_id is not None:
            station["streams"].setdefault(code, stream_id)
    return list(stations.values())
