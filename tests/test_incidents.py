"""Incidents shared by the three centers: lifecycle, handoff history, queues, and their sources."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_api_support import assert_problem, build_world

from haechi.core.errors import Conflict, InvalidInput
from haechi.model.access import Center
from haechi.response import incidents, lifecycle
from haechi.store import access, records
from haechi.store import warnings as warning_store
from haechi.store.schema import incident_events

YEOKSAM = (127.036, 37.500)  # inside the test Gangnam box


@pytest.fixture
def world(engine):
    world = build_world(engine)
    with engine.begin() as conn:  # an operator in each of the other two centers
        for center in ("cctv", "situation_room"):
            world.tokens[f"op_{center}"] = access.create_token(conn, f"op-{center}", "operator", center=center)[1]
    return world


def post(world, path, body, role="operator"):
    return world.client.post(path, json=body, headers=world.auth(role))


def new_incident(world, role="operator", **change):
    body = {"kind": "fire", "lon": YEOKSAM[0], "lat": YEOKSAM[1], "title": "역삼동 상가 화재"} | change
    response = post(world, "/api/v1/incidents", body, role)
    assert response.status_code == 201, response.text
    return response.json()


# ── the Python function other capabilities call ─────────────────────────────────────────


def test_open_incident_stores_it_reported_with_its_first_history_entry(engine):
    with engine.begin() as conn:
        incident = incidents.open_incident(conn, kind="missing_person", lon=127.0, lat=37.5, title="치매 어르신 실종",
                                           center=Center.SITUATION_ROOM, source="care", actor="care-service")
        events = conn.execute(select(incident_events)).all()
    assert (incident["status"], incident["center"], incident["severity"]) == ("reported", "situation_room", "high")
    assert incident["source"] == "care"
    assert [(e.action, e.to_value, e.actor) for e in events] == [("opened", "reported", "care-service")]


def test_changed_event_is_ready_for_the_live_stream(engine):
    import json

    with engine.begin() as conn:
        incident = incidents.open_incident(conn, kind="fire", lon=127.0, lat=37.5, title="화재", actor="t")
    event = incidents.changed_event(incident, "opened")
    assert event.type == "incident.changed"
    assert json.loads(json.dumps(event.data)) == event.data  # plain JSON: times as ISO text
    assert (event.data["action"], event.data["status"], event.data["center"]) == ("opened", "reported", "119")


@pytest.mark.parametrize(("change", "field"), [
    ({"kind": "meteor"}, "kind"), ({"lon": 200.0}, "lon"), ({"lat": float("nan")}, "lat"),
    ({"severity": "extreme"}, "severity"), ({"center": "police"}, "center"), ({"title": "  "}, "title"),
])
def test_open_incident_refuses_bad_input_naming_the_field(engine, change, field):
    args = {"kind": "fire", "lon": 127.0, "lat": 37.5, "title": "화재", "actor": "t"} | change
    with engine.begin() as conn, pytest.raises(InvalidInput) as refused:
        incidents.open_incident(conn, **args)
    assert refused.value.field == field


# ── lifecycle ───────────────────────────────────────────────────────────────────────────


def test_lifecycle_table_refuses_every_step_it_does_not_list():
    states = ("reported", "verified", "responding", "contained", "closed")
    for current in states:
        for wanted in states:
            allowed = wanted in lifecycle.allowed_next(lifecycle.INCIDENT, current)
            if allowed:
                lifecycle.check(lifecycle.INCIDENT, current, wanted)
            else:
                with pytest.raises(Conflict, match="allowed next statuses"):
                    lifecycle.check(lifecycle.INCIDENT, current, wanted)
    assert lifecycle.allowed_next(lifecycle.INCIDENT, "closed") == ()


def test_illegal_transition_is_a_409_naming_the_allowed_next_states(world):
    incident = new_incident(world)
    problem = assert_problem(post(world, f"/api/v1/incidents/{incident['id']}/status", {"status": "contained"}),
                             409, "body.status")
    assert "'reported' to 'contained'" in problem["detail"]
    assert "verified, responding, closed" in problem["detail"]
    assert_problem(post(world, f"/api/v1/incidents/{incident['id']}/status", {"status": "burning"}), 422, "body.status")
    # Nothing changed, nothing was written to the history.
    got = world.client.get(f"/api/v1/incidents/{incident['id']}", headers=world.auth("operator")).json()
    assert got["status"] == "reported" and [e["action"] for e in got["history"]] == ["opened"]


def test_full_lifecycle_is_recorded_in_order_and_closed_is_final(world):
    incident = new_incident(world)
    path = f"/api/v1/incidents/{incident['id']}/status"
    for status in ("verified", "responding", "contained", "closed"):
        response = post(world, path, {"status": status, "note": f"to {status}"})
        assert response.status_code == 200, response.text
    closed = response.json()
    assert closed["closed_at"] is not None and closed["allowed_next"] == []
    assert [(e["from_value"], e["to_value"]) for e in closed["history"][1:]] == [
        ("reported", "verified"), ("verified", "responding"), ("responding", "contained"), ("contained", "closed")]
    assert all(e["actor"] == "operator-1" for e in closed["history"])
    problem = assert_problem(post(world, path, {"status": "responding"}), 409, "body.status")
    assert "none (it is final)" in problem["detail"]


# ── handoff and queues ──────────────────────────────────────────────────────────────────


def test_handoff_moves_the_incident_between_queues_and_keeps_its_history(world):
    incident = new_incident(world, "op_cctv", kind="fire", title="CCTV 연기 감지")
    assert incident["center"] == "cctv"  # the caller's center owns what it opens
    queue = "/api/v1/incidents?center={}&status=open"
    assert [i["id"] for i in world.client.get(queue.format("cctv"),
                                              headers=world.auth("operator")).json()] == [incident["id"]]
    # The 119 center may not move an incident the CCTV center owns …
    assert_problem(post(world, f"/api/v1/incidents/{incident['id']}/status", {"status": "verified"}), 403)
    # … until the CCTV center hands it off.
    handed = post(world, f"/api/v1/incidents/{incident['id']}/handoff",
                  {"center": "119", "note": "연기 확인, 119 이관"}, "op_cctv")
    assert handed.status_code == 200, handed.text
    assert handed.json()["center"] == "119"
    assert world.client.get(queue.format("cctv"), headers=world.auth("operator")).json() == []
    assert [i["id"] for i in world.client.get(queue.format("119"),
                                              headers=world.auth("operator")).json()] == [incident["id"]]
    assert post(world, f"/api/v1/incidents/{incident['id']}/status", {"status": "verified"}).status_code == 200
    history = world.client.get(f"/api/v1/incidents/{incident['id']}/history", headers=world.auth("operator")).json()
    assert [(e["action"], e["from_value"], e["to_value"], e["actor"]) for e in history] == [
        ("opened", None, "reported", "op-cctv"),
        ("handoff", "cctv", "119", "op-cctv"),
        ("status", "reported", "verified", "operator-1"),
    ]
    assert history[1]["note"] == "연기 확인, 119 이관"
    # Handing it to the center that already owns it is refused.
    assert_problem(post(world, f"/api/v1/incidents/{incident['id']}/handoff", {"center": "119"}), 409, "body.center")


def test_open_queue_leaves_out_closed_incidents_and_filters_by_center(world):
    a = new_incident(world)
    b = new_incident(world, title="두 번째")
    new_incident(world, "op_situation_room", kind="flooding", title="침수")
    post(world, f"/api/v1/incidents/{a['id']}/status", {"status": "closed", "note": "오인 신고"})
    open_119 = world.client.get("/api/v1/incidents?center=119&status=open", headers=world.auth("operator")).json()
    assert [i["id"] for i in open_119] == [b["id"]]
    closed = world.client.get("/api/v1/incidents?status=closed", headers=world.auth("operator")).json()
    assert [i["id"] for i in closed] == [a["id"]]
    assert len(world.client.get("/api/v1/incidents", headers=world.auth("operator")).json()) == 3
    assert_problem(world.client.get("/api/v1/incidents?status=burning", headers=world.auth("operator")), 422,
                   "query.status")
    assert world.client.get("/api/v1/incidents", headers=world.auth("citizen")).status_code == 403
    layer = world.client.get("/api/v1/incidents.geojson", headers=world.auth("operator")).json()
    assert {f["id"] for f in layer["features"]} == {b["id"], open_119[0]["id"]} | {
        i["id"] for i in world.client.get("/api/v1/incidents?center=situation_room",
                                          headers=world.auth("operator")).json()}


@pytest.mark.parametrize(("body", "field"), [
    ({"kind": "fire", "lat": 37.5, "lon": 127.0}, "body.title"),
    ({"kind": "meteor", "lat": 37.5, "lon": 127.0, "title": "x"}, "body.kind"),
    ({"kind": "fire", "lat": 95.0, "lon": 127.0, "title": "x"}, "body.lat"),
    ({"kind": "fire", "lon": 127.0, "title": "x"}, "body"),
    ({"report_id": 999, "kind": "sinkhole"}, "body.report_id"),
    ({"warning_id": 999}, "body.warning_id"),
])
def test_bad_incident_is_refused_naming_the_field(world, body, field):
    assert_problem(post(world, "/api/v1/incidents", body), 422, field)
    assert world.client.get("/api/v1/incidents", headers=world.auth("operator")).json() == []


# ── sources: citizens' reports and warnings ─────────────────────────────────────────────


def test_incident_from_a_citizen_report_links_it_and_marks_it_triaged(world):
    report = post(world, "/api/v1/reports", {"kind": "sinkhole", "description": "도로에 구멍이 생겼어요",
                                             "lon": 127.04, "lat": 37.50}, "citizen").json()
    response = post(world, "/api/v1/incidents", {"report_id": report["id"], "kind": "sinkhole", "severity": "medium"},
                    "op_situation_room")
    assert response.status_code == 201, response.text
    incident = response.json()
    assert (incident["source"], incident["source_ref"]) == ("report", f"report:{report['id']}")
    assert (incident["lon"], incident["lat"], incident["area_code"]) == (127.04, 37.50, "11680")
    assert incident["title"] == "도로에 구멍이 생겼어요"
    with world.engine.begin() as conn:
        assert records.get_report(conn, report["id"])["status"] == "triaged"
    # Triaging the same report twice is refused.
    assert_problem(post(world, "/api/v1/incidents", {"report_id": report["id"], "kind": "sinkhole"}), 409,
                   "body.report_id")


def test_incident_from_a_warning_takes_kind_and_severity_from_it(world):
    now = incidents.utcnow()
    with world.engine.begin() as conn:
        warning_id = warning_store.open_warning(conn, {
            "hazard": "heavy_rain", "area_key": "district:11680", "area_code": "11680", "level": "warning",
            "crisis_level": "alert", "issued_at": now, "updated_at": now})
    incident = post(world, "/api/v1/incidents", {"warning_id": warning_id}, "op_situation_room").json()
    assert (incident["kind"], incident["severity"], incident["center"]) == ("flooding", "high", "situation_room")
    assert incident["source_ref"] == f"warning:{warning_id}"
    assert incident["area_code"] == "11680"  # placed inside the warned district


def test_district_official_sees_only_incidents_in_their_area(world):
    inside = new_incident(world)
    outside = new_incident(world, lon=126.98, lat=37.59, title="종로 화재")
    seen = world.client.get("/api/v1/incidents", headers=world.auth("district_official")).json()
    assert [i["id"] for i in seen] == [inside["id"]]
    assert world.client.get(f"/api/v1/incidents/{outside['id']}",
                            headers=world.auth("district_official")).status_code == 403
    assert post(world, "/api/v1/incidents", {"kind": "fire", "lon": 127.0, "lat": 37.5, "title": "x"},
                "district_official").status_code == 403
