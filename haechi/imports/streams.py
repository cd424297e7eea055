"""Datastreams for imported stations: each station a place with a Thing, one Datastream per property.

The same shape ``haechi/ingest/provision.py`` gives a city pack's stations, so imported readings
land beside live ones. Stations new to the DB become places of their kind (no coordinates until
a register supplies them); idempotent like provisioning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import Connection, select

from haechi.cities.provision import save_catalogue
from haechi.model.catalogue import lookup
from haechi.store import places as place_store
from haechi.store import sensing
from haechi.store.schema import datastreams, gauges, places, things


@dataclass
class StreamCache:
    """(place kind, station ref, property) → datastream id, remembered across the batches of a run."""

    source: str
    ids: dict[tuple[str, str, str], int] = field(default_factory=dict)
    datums: dict[str, float | None] = field(default_factory=dict)  # river gauge ref → gauge zero (El. m)
    _sensor: int | None = None

    def streams(self, conn: Connection, place_kind: str, stations: dict[str, str], properties: list[str]) -> dict:
        """Datastream ids for every (ref, property) of ``stations`` (ref → name), made when missing."""
        missing = {ref: name for ref, name in stations.items()
                   if any((place_kind, ref, p) not in self.ids for p in properties)}
        if missing:
            self._provision(conn, place_kind, missing, properties)
        return {(ref, p): self.ids[(place_kind, ref, p)] for ref in stations for p in properties}

    def _provision(self, conn: Connection, place_kind: str, stations: dict[str, str], properties: list[str]) -> None:
        property_ids = save_catalogue(conn)
        known = set(conn.execute(select(places.c.ref).where(
            places.c.kind == place_kind, places.c.ref.in_(list(stations)))).scalars())
        new = [{"kind": place_kind, "ref": ref, "name_ko": name or ref, "source": self.source}
               for ref, name in stations.items() if ref not in known]
        if new:
            place_store.save_places(conn, new)
        rows = conn.execute(select(places.c.id, places.c.ref, places.c.area_code).where(
            places.c.kind == place_kind, places.c.ref.in_(list(stations)))).all()
        for place_id, ref, area_code in rows:
            thing_id = conn.execute(select(things.c.id).where(things.c.place_id == place_id)).scalar()
            if thing_id is None:
                thing_id = sensing.create_thing(conn, {
                    "name": stations[ref] or ref, "description": stations[ref] or ref, "place_id": place_id,
                    "properties": {"kind": place_kind, "ref": ref, "source": self.source}})
            have = dict(conn.execute(select(datastreams.c.observed_property_id, datastreams.c.id)
                                     .where(datastreams.c.thing_id == thing_id)).all())
            for code in properties:
                stream_id = have.get(property_ids[code])
                if stream_id is None:
                    stream_id = self._create_stream(conn, thing_id, property_ids[code], code, place_kind, ref,
                                                    stations[ref], area_code)
                self.ids[(place_kind, ref, code)] = stream_id
            if place_kind == "river_gauge":
                self.datums[ref] = conn.execute(
                    select(gauges.c.datum_elevation_m).where(gauges.c.place_id == place_id)).scalar()

    def _create_stream(self, conn, thing_id, property_id, code, place_kind, ref, name, area_code) -> int:
        prop = lookup(code)
        if self._sensor is None:
            self._sensor = sensing.create_sensor(conn, {
                "name": "station instrument", "encoding_type": "text/html",
                "description": f"The station's own instrument, as imported from {self.source}", "metadata": ""})
        return sensing.create_datastream(conn, {
            "name": f"{name or ref} {prop.name_en}", "description": f"{name or ref} {prop.name_ko}",
            "thing_id": thing_id, "sensor_id": self._sensor, "observed_property_id": property_id,
            "unit_name": prop.unit_name, "unit_symbol": prop.unit_symbol, "unit_definition": prop.unit_definition,
            "area_code": area_code[:5] if area_code else None,  # district, as ingest/provision.py does
            "properties": {"place_kind": place_kind, "place_ref": ref, "imported_from": self.source},
        })
