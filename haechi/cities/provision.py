"""Giving the city's stations their SensorThings entities, so their readings have somewhere to go.

Each monitoring place of a city pack (river gauges, dams, tide, weather and air stations) becomes a
Thing at a Location with one Datastream per property it measures (``stations.csv``). Idempotent:
a place that already has its Thing, or a Thing that already has the datastream, is left alone.
"""

from __future__ import annotations

import csv
from pathlib import Path

from sqlalchemy import Connection, select

from haechi.model.catalogue import catalogue
from haechi.store import sensing
from haechi.store.schema import datastreams, places, things

STATIONS = Path(__file__).with_name("stations.csv")


def save_catalogue(conn: Connection) -> dict[str, int]:
    """The observed-property catalogue as SensorThings ObservedProperties; returns code → id."""
    sensing.save_observed_properties(conn, [
        {"code": p.code, "name": p.name_en, "definition": p.definition,
         "description": f"{p.name_ko} ({p.unit_symbol})"} for p in catalogue().values()])
    return sensing.observed_property_ids(conn)


def provision_stations(conn: Connection) -> int:
    """Create the missing Things and Datastreams of every station place; returns datastreams created."""
    plan: dict[str, list[dict[str, str]]] = {}
    with open(STATIONS, encoding="utf-8") as f:
        for row in csv.DictReader(f):
            plan.setdefault(row["place_kind"], []).append(row)
    property_ids = save_catalogue(conn)
    sensor_id = None
    created = 0
    stations = conn.execute(select(places).where(places.c.kind.in_(list(plan))).order_by(places.c.id)).all()
    for place in stations:
        thing_id = conn.execute(select(things.c.id).where(things.c.place_id == place.id)).scalar()
        if thing_id is None:
            thing_id = _thing_for(conn, place)
        have = set(conn.execute(select(datastreams.c.observed_property_id)
                                .where(datastreams.c.thing_id == thing_id)).scalars())
        for wanted in plan[place.kind]:
            if property_ids[wanted["property"]] in have:
                continue
            sensor_id = sensor_id or sensing.create_sensor(conn, {
                "name": "station instrument",
                "description": "The station's own instrument, as its publisher reports it",
                "encoding_type": "text/html", "metadata": ""})
            sensing.create_datastream(conn, {
                "name": f"{place.name_en or place.name_ko} {wanted['name_en']}",
                "description": f"{place.name_ko} {wanted['name_ko']}",
                "thing_id": thing_id, "sensor_id": sensor_id,
                "observed_property_id": property_ids[wanted["property"]],
                "unit_name": catalogue()[wanted["property"]].unit_name, "unit_symbol": wanted["unit"],
                "unit_definition": f"http://unitsofmeasure.org/ucum.html#{wanted['unit']}",
                "area_code": place.area_code[:5] if place.area_code else None,
                "properties": {"place_kind": place.kind, "place_ref": place.ref},
            })
            created += 1
    return created


def _thing_for(conn: Connection, place) -> int:
    location_ids = []
    if place.lon is not None:
        location_ids.append(sensing.create_location(conn, {
            "name": place.name_ko, "description": place.address or place.name_ko,
            "location": {"type": "Point", "coordinates": [place.lon, place.lat]}}))
    return sensing.create_thing(conn, {
        "name": place.name_en or place.name_ko, "description": place.name_ko, "place_id": place.id,
        "properties": {"kind": place.kind, "ref": place.ref, "source": place.source}}, location_ids)
