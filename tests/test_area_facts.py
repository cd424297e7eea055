"""A warning's area facts are computed once per geography version and never outlive a change.

Database triggers count every change to the tables that decide who and what a warning's area
holds (``GEOGRAPHY_TABLES``); ``area_facts`` reuses what it computed while the count stands. On
SQLite and PostgreSQL: every such table bumps the count, and a shelter saved over the API inside a
gauge's flood zone is counted by the warning's next alert.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import insert, select, update
from test_sensors_first_class import eventually

from haechi.cities.load import load_city
from haechi.store import areas, sensing
from haechi.store.schema import GEOGRAPHY_TABLES, locations, metadata, thing_locations, things

HANGANG_BRIDGE = "1018683"  # flood advisory at 8.5 m, warning at 10.5 m (criteria/river_flood.csv)
T0 = datetime.now(UTC).replace(second=0, microsecond=0) - timedelta(hours=2)


def test_every_table_that_decides_an_area_counts_its_changes(engine):
    load_city(engine, "seoul")
    with engine.begin() as conn:  # the pack gives Things no Location of their own: link one
        thing = conn.execute(select(things.c.id).limit(1)).scalar_one()
        location = conn.execute(insert(locations).values(name="mast", location={"type": "Point", "coordinates": [
            126.98, 37.57]}, lon=126.98, lat=37.57)).inserted_primary_key[0]
        conn.execute(insert(thing_locations).values(thing_id=thing, location_id=location))
    for name in GEOGRAPHY_TABLES:
        table = metadata.tables[name]
        key = next(iter(table.primary_key.columns))
        with engine.begin() as conn:
            before = areas.geography_version(conn)
            first = conn.execute(select(key).order_by(key).limit(1)).scalar_one()
            conn.execute(update(table).where(key == first).values({key.name: first}))  # a change of nothing
            assert areas.geography_version(conn) > before, f"a change to {name} went uncounted"


def test_a_shelter_saved_over_the_api_is_counted_by_the_warnings_next_alert(seoul_api):
    client, tokens, engine = seoul_api
    gauge = _gauge(client)
    with engine.connect() as conn:
        level = next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == "Hangang Bridge water level")
    _report(client, tokens, level, T0, 8.6)
    advisory = _alert(client, "Alert")
    _save_shelter(client, tokens, gauge)
    _report(client, tokens, level, T0 + timedelta(minutes=10), 10.6)
    warning = _alert(client, "Update")
    assert warning["affected"]["shelters"] == advisory["affected"]["shelters"] + 1
    assert warning["affected"]["places"] == advisory["affected"]["places"] + 1


def _gauge(client: TestClient) -> dict[str, Any]:
    found = client.get("/api/v1/places", params={"kind": "river_gauge", "limit": 100}).json()
    return next(p for p in found if p["ref"] == HANGANG_BRIDGE)


def _report(client: TestClient, tokens, stream: int, at: datetime, metres: float) -> None:
    answer = client.post("/api/v1/observations", headers={"Authorization": f"Bearer {tokens['device']}"},
                         json=[{"datastream_id": stream, "result": metres, "phenomenon_time": at.isoformat()}])
    assert answer.status_code == 200, answer.text


def _save_shelter(client: TestClient, tokens, gauge: dict[str, Any]) -> None:
    answer = client.post("/api/v1/places", headers={"Authorization": f"Bearer {tokens['operator']}"}, json={
        "places": [{"kind": "shelter", "ref": "test-shelter-by-the-bridge", "name_ko": "한강대교 임시대피소",
                    "name_en": "Hangang Bridge temporary shelter", "lon": gauge["lon"] + 0.001,
                    "lat": gauge["lat"], "shelter_kind": "temporary_housing"}]})
    assert answer.status_code == 200, answer.text


def _alert(client: TestClient, msg_type: str, wait_s: float = 20) -> dict[str, Any]:
    """The river-flood alert of this type, once the engine has recorded it."""
    return eventually(lambda: next((a for a in client.get("/api/v1/alerts", params={"hazard": "river_flood"}).json()
                                    if a["msg_type"] == msg_type), None), wait_s)
