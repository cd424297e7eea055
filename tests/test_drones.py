"""Drones: registration as SensorThings Things, telemetry through the sensing pipeline, tracks, positions."""

from __future__ import annotations

import asyncio
import json
import socket
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from test_api_support import assert_problem, build_world

from haechi.bus.memory import InProcessBus
from haechi.core.clock import utcnow
from haechi.core.events import Event
from haechi.ingest.pipeline import Pipeline
from haechi.response import drones, repository
from haechi.response.drone_positions import DronePositions
from haechi.store import deadletters, places
from haechi.store.schema import datastreams, things

BASE = {"kind": "fire_station", "ref": "F-D", "name_ko": "드론 기지 소방서", "lon": 127.048, "lat": 37.506}


@pytest.fixture
def world(engine):
    world = build_world(engine)
    with engine.begin() as conn:
        places.save_places(conn, [BASE])
    return world


def post(world, path, body, role="operator"):
    return world.client.post(path, json=body, headers=world.auth(role))


def register(world, call_sign="드론-1"):
    with world.engine.begin() as conn:
        base_id = next(p["id"] for p in places.list_places(conn, "fire_station") if p["ref"] == "F-D")
    response = post(world, "/api/v1/drones", {"call_sign": call_sign, "model": "M30T", "base_place_id": base_id})
    assert response.status_code == 201, response.text
    return response.json()


def fix(minute: int, lon: float, **extra):
    moment = (utcnow() - timedelta(minutes=10 - minute)).isoformat()
    return {"time": moment, "lon": lon, "lat": 37.50 + minute / 1000} | extra


def test_a_drone_is_a_sensorthings_thing_with_four_datastreams_at_its_base(world):
    drone = register(world)
    assert (drone["base_lon"], drone["base_lat"]) == (BASE["lon"], BASE["lat"])
    assert set(drone["datastreams"]) == {"longitude", "latitude", "altitude", "battery_level"}
    with world.engine.begin() as conn:
        thing = conn.execute(select(things).where(things.c.id == drone["thing_id"])).one()
        count = conn.execute(select(func.count()).select_from(datastreams).where(
            datastreams.c.thing_id == drone["thing_id"])).scalar()
    assert thing.properties["kind"] == "drone" and count == 4
    # The same Thing is visible to stock SensorThings clients.
    sta = world.client.get(f"/sta/v1.1/Things({drone['thing_id']})/Datastreams").json()
    assert len(sta["value"]) == 4
    assert_problem(post(world, "/api/v1/drones", {"call_sign": "드론-1", "base_lon": 127.0, "base_lat": 37.5}), 409,
                   "body.call_sign")
    assert_problem(post(world, "/api/v1/drones", {"call_sign": "드론-2"}), 422, "body.base_lon")


def test_telemetry_is_stored_through_the_pipeline_and_read_back_as_a_track(world):
    drone = register(world)
    path = f"/api/v1/drones/{drone['id']}/telemetry"
    sent = [fix(m, 127.040 + m / 1000, altitude_m=80.0 + m, battery_pct=90.0 - m) for m in range(3)]
    for body in reversed(sent):  # out of order: the track is ordered by time anyway
        response = post(world, path, body, "device")
        assert response.status_code == 200, response.text
        assert response.json()["stored"] == 4
    assert post(world, path, sent[0], "device").json()["duplicates"] == 4  # a resend is a no-op
    track = world.client.get(f"/api/v1/drones/{drone['id']}/track", headers=world.auth("operator")).json()
    assert track["geometry"]["type"] == "LineString"
    assert track["geometry"]["coordinates"] == [
        [pytest.approx(127.040 + m / 1000), pytest.approx(37.50 + m / 1000), 80.0 + m] for m in range(3)]
    assert track["properties"]["points"] == 3
    listed = world.client.get("/api/v1/drones", headers=world.auth("operator")).json()
    assert listed[0]["position"]["battery_pct"] == 88.0


def test_telemetry_through_the_ordinary_bulk_upload_counts_too(world):
    drone = register(world)
    now = utcnow()
    streams = drone["datastreams"]
    body = [{"datastream_id": streams[p], "phenomenon_time": (now - timedelta(seconds=s)).isoformat(), "result": v}
            for s, p, v in [(30, "longitude", 127.01), (30, "latitude", 37.51), (20, "longitude", 127.02),
                            (20, "latitude", 37.52), (10, "longitude", 127.03), (10, "latitude", 95.0)]]
    report = post(world, "/api/v1/observations", body, "device").json()
    # The catalogue's QC applies to drone telemetry like any sensor's: latitude 95° is stored, flagged bad.
    assert (report["stored"], report["quality"]["bad"]) == (6, 1)
    track = world.client.get(f"/api/v1/drones/{drone['id']}/track", headers=world.auth("operator")).json()
    assert track["geometry"]["coordinates"] == [[127.01, 37.51], [127.02, 37.52]]


@pytest.mark.parametrize(("change", "field"), [
    ({"battery_pct": 150}, "body.battery_pct"), ({"lon": 200}, "body.lon"), ({"lat": None}, "body.lat"),
    ({"altitude_m": 5000}, "body.altitude_m"), ({"time": "2026-11-27T09:00:00"}, "body.time"),
])
def test_bad_telemetry_names_the_field(world, change, field):
    drone = register(world)
    assert_problem(post(world, f"/api/v1/drones/{drone['id']}/telemetry", fix(1, 127.0) | change, "device"), 422, field)


def test_telemetry_from_the_future_is_stored_flagged_bad_and_left_off_the_track(world):
    drone = register(world)
    path = f"/api/v1/drones/{drone['id']}/telemetry"
    post(world, path, fix(1, 127.03), "device")
    future = (utcnow() + timedelta(hours=2)).isoformat()
    response = post(world, path, {"time": future, "lon": 127.9, "lat": 37.9}, "device").json()
    assert response["quality"]["bad"] == 2  # the pipeline's clock check: kept, flagged, never dropped
    track = world.client.get(f"/api/v1/drones/{drone['id']}/track", headers=world.auth("operator")).json()
    assert track["geometry"] == {"type": "Point", "coordinates": [127.03, pytest.approx(37.501)]}


def test_assigning_a_drone_is_in_the_incident_history(world):
    drone = register(world)
    incident = post(world, "/api/v1/incidents", {"kind": "fire", "lon": 127.036, "lat": 37.5, "title": "화재"}).json()
    assigned = post(world, f"/api/v1/drones/{drone['id']}/assign", {"incident_id": incident["id"]}).json()
    assert assigned["incident_id"] == incident["id"]
    other = post(world, "/api/v1/incidents", {"kind": "fire", "lon": 127.04, "lat": 37.5, "title": "다른 화재"}).json()
    assert_problem(post(world, f"/api/v1/drones/{drone['id']}/assign", {"incident_id": other["id"]}), 409,
                   "body.incident_id")
    assert post(world, f"/api/v1/drones/{drone['id']}/assign", {"incident_id": None}).json()["incident_id"] is None
    history = world.client.get(f"/api/v1/incidents/{incident['id']}/history", headers=world.auth("operator")).json()
    assert [(e["action"], e["to_value"]) for e in history[1:]] == [("drone", "assigned"), ("drone", "released")]


def test_stored_drone_readings_become_drone_position_events(engine):
    with engine.begin() as conn:
        drone = drones.register(conn, call_sign="d-1", base_lon=127.0, base_lat=37.5)
    bus = InProcessBus()
    seen: list[Event] = []

    async def scenario():
        DronePositions(engine, bus).start()
        bus.subscribe("drone.position", lambda e: _append(seen, e))
        pipeline = Pipeline(engine, bus=bus)
        at = utcnow() - timedelta(seconds=5)
        values = {"lon": 127.01, "lat": 37.51, "altitude_m": 60.0, "battery_pct": 77.0}
        await pipeline.ingest(drones.readings(drone, values, at), "test")
        await pipeline.ingest(drones.readings(drone, {"battery_pct": 70.0}, at + timedelta(seconds=1)), "test")

    asyncio.run(scenario())
    # One position (the battery-only message moves nothing), complete with the newest altitude and battery.
    assert [e.data | {"time": None} for e in seen] == [{"drone_id": drone["id"], "call_sign": "d-1", "lon": 127.01,
                                                        "lat": 37.51, "altitude_m": 60.0, "battery_pct": 77.0,
                                                        "time": None}]


async def _append(seen, event):
    seen.append(event)


def test_drone_telemetry_over_real_mqtt_reaches_the_track(sqlite_engine):
    """Through Mosquitto like any sensor: the same MQTT ingest, the same topic scheme."""
    try:
        socket.create_connection(("127.0.0.1", 1883), timeout=2).close()
    except OSError as exc:
        from conftest import service_unavailable

        service_unavailable("Mosquitto", exc)
    import paho.mqtt.client as paho

    from haechi.ingest.mqtt import MqttIngest

    with sqlite_engine.begin() as conn:
        drone = drones.register(conn, call_sign="mqtt-drone", base_lon=127.0, base_lat=37.5)
    prefix, tag = f"test-drones/{uuid.uuid4().hex[:8]}", uuid.uuid4().hex[:8]
    bus = InProcessBus()
    positions: list[Event] = []
    at = utcnow() - timedelta(seconds=30)

    async def scenario():
        DronePositions(sqlite_engine, bus).start()
        bus.subscribe("drone.position", lambda e: _append(positions, e))
        ingest = MqttIngest("mqtt://127.0.0.1:1883", Pipeline(sqlite_engine, bus=bus), topic_prefix=prefix,
                            client_id=f"drone-ingest-{tag}", session_expiry=0)
        await ingest.start()
        await ingest.wait_subscribed()
        publisher = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id=f"drone-{tag}")
        publisher.connect("127.0.0.1", 1883)
        publisher.loop_start()
        for second in range(3):
            for code, value in (("longitude", 127.0 + second / 100), ("latitude", 37.5 + second / 100)):
                payload = json.dumps({"phenomenon_time": (at + timedelta(seconds=second)).isoformat(), "result": value})
                publisher.publish(f"{prefix}/{drone['datastreams'][code]}/observations", payload,
                                  qos=1).wait_for_publish()
        publisher.publish(f"{prefix}/{drone['datastreams']['battery_level']}/observations", b"{broken", qos=1)
        publisher.loop_stop()
        publisher.disconnect()
        for _ in range(300):
            with sqlite_engine.begin() as conn:
                geometry = drones.track(conn, drone)["geometry"] or {}
                done = len(geometry.get("coordinates", [])) == 3 and deadletters.pending(conn)
            if done:
                break
            await asyncio.sleep(0.1)
        await ingest.stop()

    asyncio.run(scenario())
    with sqlite_engine.begin() as conn:
        track = drones.track(conn, repository.get_drone(conn, drone["id"]))
        letters = deadletters.pending(conn)
    assert track["geometry"]["coordinates"] == [[127.0, 37.5], [127.01, 37.51], [127.02, 37.52]]
    assert len(letters) == 1 and letters[0]["source"].startswith("mqtt:")  # the broken message, kept
    assert positions and positions[-1].data["lon"] == 127.02
