"""CCTV analytics events: accepted ones open or join incidents; bad ones are refused and kept."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from test_api_support import assert_problem, build_world

from haechi.core.clock import utcnow
from haechi.store import deadletters, places

CAMERA = {"kind": "cctv", "ref": "GN-0412", "name_ko": "역삼 방범 CCTV", "area_code": "11680", "lon": 127.0360,
          "lat": 37.5000, "purpose": "crime prevention", "direction_deg": 90.0, "fov_deg": 60.0, "range_m": 80.0}


@pytest.fixture
def world(engine):
    world = build_world(engine)
    with engine.begin() as conn:
        places.save_places(conn, [CAMERA])
    return world


def event(**change):
    return {"event_id": f"vms-{utcnow().timestamp()}", "camera_ref": "GN-0412", "type": "smoke_fire",
            "observed_at": utcnow().isoformat(), "lon": 127.0365, "lat": 37.5001, "confidence": 0.9} | change


def post(world, body, role="device"):
    data = body if isinstance(body, str) else json.dumps(body)
    return world.client.post("/api/v1/cctv/events", content=data, headers=world.auth(role) | {
        "content-type": "application/json"})


def letters(world):
    with world.engine.begin() as conn:
        return deadletters.pending(conn, source="http:cctv-events")


def test_smoke_event_opens_a_fire_incident_owned_by_the_cctv_center(world):
    response = post(world, event(event_id="e-1"))
    assert response.status_code == 201, response.text
    body = response.json()
    assert body["incident_opened"] is True
    incident = world.client.get(f"/api/v1/incidents/{body['incident_id']}", headers=world.auth("operator")).json()
    assert (incident["kind"], incident["center"], incident["source"]) == ("fire", "cctv", "cctv")
    assert incident["source_ref"] == "cctv:e-1"
    assert [e["action"] for e in incident["history"]] == ["opened", "cctv_event"]
    # A second camera event nearby joins the open incident instead of opening another.
    again = post(world, event(event_id="e-2", lon=127.0366)).json()
    assert (again["incident_id"], again["incident_opened"]) == (body["incident_id"], False)
    assert len(world.client.get("/api/v1/incidents", headers=world.auth("operator")).json()) == 1
    assert letters(world) == []


def test_fall_and_light_crowds_are_recorded_without_an_incident_dense_crowds_open_one(world):
    assert post(world, event(event_id="f-1", type="fall")).json()["incident_id"] is None
    assert post(world, event(event_id="c-1", type="crowd_density", density=2.5)).json()["incident_id"] is None
    dense = post(world, event(event_id="c-2", type="crowd_density", density=6.5)).json()
    assert dense["incident_opened"] is True
    incident = world.client.get(f"/api/v1/incidents/{dense['incident_id']}", headers=world.auth("operator")).json()
    assert incident["kind"] == "crowd_crush_risk"
    listed = world.client.get("/api/v1/cctv/events", headers=world.auth("operator")).json()
    assert [e["event_id"] for e in listed] == ["c-2", "c-1", "f-1"]  # newest first


def hours_from_now(hours: float) -> str:
    return (utcnow() + timedelta(hours=hours)).isoformat()


# Each case is a change to a good event, made when the test runs (times must be fresh).
@pytest.mark.parametrize(("change", "field", "reason"), [
    (lambda: {"camera_ref": "NOPE"}, "body.camera_ref", "no camera 'NOPE' in the CCTV registry"),
    (lambda: {"camera_ref": None, "camera_id": 99999}, "body.camera_id", "no camera 99999"),
    (lambda: {"lon": 181.0}, "body.lon", "lon must be a number"),
    (lambda: {"lat": "north"}, "body.lat", "lat must be a number"),
    (lambda: {"lon": 127.10, "lat": 37.55}, "body.lon", "beyond twice its 80 m range"),
    (lambda: {"lat": None}, "body.lat", "give lon and lat together"),
    (lambda: {"type": "explosion"}, "body.type", "type must be one of"),
    (lambda: {"type": "crowd_density"}, "body.density", "needs density"),
    (lambda: {"type": "crowd_density", "density": 40}, "body.density", "from 0 to 10"),
    (lambda: {"observed_at": hours_from_now(-2)}, "body.observed_at", "s old: a replay"),
    (lambda: {"observed_at": hours_from_now(1)}, "body.observed_at", "in the future"),
    (lambda: {"observed_at": "2026-11-27T09:00:00"}, "body.observed_at", "needs its UTC offset"),
    (lambda: {"colour": "red"}, "body.colour", "unknown field"),
    (lambda: "{not json", "body", "not valid JSON"),
])
def test_bad_events_are_refused_and_kept_with_their_reason(world, change, field, reason):
    made = change()
    body = made if isinstance(made, str) else event(event_id="bad-1") | made
    assert_problem(post(world, body), 422, field)
    [letter] = letters(world)
    assert reason in letter["reason"] and field.removeprefix("body.") in letter["reason"]
    assert letter["payload"] == (body if isinstance(body, str) else json.dumps(body))
    assert world.client.get("/api/v1/incidents", headers=world.auth("operator")).json() == []


def test_a_replayed_event_id_is_refused_and_kept(world):
    first = event(event_id="dup-1")
    assert post(world, first).status_code == 201
    problem = assert_problem(post(world, first), 409, "body.event_id")
    assert "replay" in problem["detail"]
    [letter] = letters(world)
    assert "replay" in letter["reason"] and json.loads(letter["payload"])["event_id"] == "dup-1"
    assert len(world.client.get("/api/v1/cctv/events", headers=world.auth("operator")).json()) == 1


def test_only_devices_and_operators_post_events(world):
    assert post(world, event(), role="citizen").status_code == 403
    assert world.client.post("/api/v1/cctv/events", json=event()).status_code == 401
