"""A warning's area facts are computed once per geography version and never outlive a change.

Database triggers count every change to the tables that decide who and what a warning's area
holds (``GEOGRAPHY_TABLES``); ``area_facts`` reuses what it computed while the count stands. On
SQLite and PostgreSQL: every such table bumps the count, and a shelter saved over the API inside a
gauge's flood zone is counted by the warning's next alert, also when an API replica saves it and an
engine in another process makes the alert.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import conftest
import httpx
import pytest
from cluster_support import PATIENCE_S, cluster_of_own, free_port, ready, until
from sqlalchemy import create_engine, insert, select, text, update
from test_sensors_first_class import eventually

from haechi.cities.load import load_city
from haechi.store import access, areas, sensing
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


@pytest.mark.postgres
def test_a_transaction_waiting_on_the_count_holds_no_row_another_wants_so_both_commit(postgres_url):
    """The first transaction changes a Location (it holds the count), the second a Thing, then the
    first that same Thing. Counting before each statement, the second waits for the count without
    holding the Thing, so the first goes on; counting after it, the two deadlocked."""
    conftest._empty_postgres(postgres_url)
    db = create_engine(postgres_url)
    try:
        with db.begin() as conn:
            thing = conn.execute(insert(things).values(name="gauge")).inserted_primary_key[0]
            location = conn.execute(insert(locations).values(name="mast", location={
                "type": "Point", "coordinates": [126.98, 37.57]}, lon=126.98, lat=37.57)).inserted_primary_key[0]
        refused: list[Exception] = []

        def second() -> None:
            try:
                with db.begin() as conn:
                    conn.execute(update(things).where(things.c.id == thing).values(name="renamed second"))
            except Exception as exc:  # noqa: BLE001 - a deadlock is what this test looks for
                refused.append(exc)

        with db.connect() as first:
            first.execute(update(locations).where(locations.c.id == location).values(name="moved mast"))
            waiting = threading.Thread(target=second)
            waiting.start()
            eventually(lambda: _a_lock_is_waited_for(db) or None, 20)
            first.execute(update(things).where(things.c.id == thing).values(name="renamed first"))
            first.commit()
        waiting.join(20)
        assert refused == []
        with db.connect() as conn:
            assert conn.execute(select(things.c.name).where(things.c.id == thing)).scalar_one() == "renamed second"
    finally:
        db.dispose()


def _a_lock_is_waited_for(db) -> bool:
    with db.connect() as conn:
        return conn.execute(text("SELECT count(*) FROM pg_locks WHERE NOT granted")).scalar_one() > 0


def test_a_shelter_saved_over_the_api_is_counted_by_the_warnings_next_alert(seoul_api):
    client, tokens, engine = seoul_api
    _a_shelter_is_counted_by_the_next_alert(client, tokens, _level_stream(engine), wait_s=20)


@pytest.mark.postgres
def test_a_shelter_saved_through_an_api_replica_is_counted_by_the_engine_in_another_process():
    """Each engine keeps its facts in its own memory, the count is in the database: the shelter is
    saved through an API replica, the alert made by the engine, a process of its own."""
    with cluster_of_own() as cluster:
        load = cluster.run("city", "load", "seoul")
        assert load.popen.wait(PATIENCE_S) == 0, load.log
        with cluster.db.begin() as conn:
            tokens = {role: access.create_token(conn, f"test {role}", role)[1] for role in ("device", "operator")}
        port = free_port()
        cluster.run("serve", "--port", str(port))
        engine, worker = cluster.engine("engine-a"), cluster.run("worker")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            until(lambda: ready(port))
            engine.wait_for("running engine:")
            worker.wait_for("worker consuming")
            _a_shelter_is_counted_by_the_next_alert(client, tokens, _level_stream(cluster.db), wait_s=PATIENCE_S)


def _a_shelter_is_counted_by_the_next_alert(client, tokens, level: int, wait_s: float) -> None:
    """Hangang Bridge's advisory, a shelter saved beside the gauge, then the warning: its Update counts it."""
    gauge = _gauge(client)
    _report(client, tokens, level, T0, 8.6)
    advisory = _alert(client, "Alert", wait_s)
    _save_shelter(client, tokens, gauge)
    _report(client, tokens, level, T0 + timedelta(minutes=10), 10.6)
    warning = _alert(client, "Update", wait_s)
    assert warning["affected"]["shelters"] == advisory["affected"]["shelters"] + 1
    assert warning["affected"]["places"] == advisory["affected"]["places"] + 1


def _level_stream(engine) -> int:
    with engine.connect() as conn:
        return next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == "Hangang Bridge water level")


def _gauge(client) -> dict[str, Any]:
    found = client.get("/api/v1/places", params={"kind": "river_gauge", "limit": 100}).json()
    return next(p for p in found if p["ref"] == HANGANG_BRIDGE)


def _report(client, tokens, stream: int, at: datetime, metres: float) -> None:
    answer = client.post("/api/v1/observations", headers={"Authorization": f"Bearer {tokens['device']}"},
                         json=[{"datastream_id": stream, "result": metres, "phenomenon_time": at.isoformat()}])
    assert answer.status_code in (200, 202), answer.text  # 202: queued for a cluster's workers


def _save_shelter(client, tokens, gauge: dict[str, Any]) -> None:
    answer = client.post("/api/v1/places", headers={"Authorization": f"Bearer {tokens['operator']}"}, json={
        "places": [{"kind": "shelter", "ref": "test-shelter-by-the-bridge", "name_ko": "한강대교 임시대피소",
                    "name_en": "Hangang Bridge temporary shelter", "lon": gauge["lon"] + 0.001,
                    "lat": gauge["lat"], "shelter_kind": "temporary_housing"}]})
    assert answer.status_code == 200, answer.text


def _alert(client, msg_type: str, wait_s: float = 20) -> dict[str, Any]:
    """The river-flood alert of this type, once the engine has recorded it."""
    return eventually(lambda: next((a for a in client.get("/api/v1/alerts", params={"hazard": "river_flood"}).json()
                                    if a["msg_type"] == msg_type), None), wait_s)
