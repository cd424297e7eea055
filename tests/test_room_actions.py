"""What operators and citizens do from the pages: acknowledge a warning, attach a photo to a
report; refused reports are kept. Over HTTP on SQLite and PostgreSQL."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from test_api_support import assert_problem, build_world

from haechi.store.schema import dead_letters

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64  # the signature is what is checked
JPEG = b"\xff\xd8\xff\xe0" + b"\x00" * 64
REPORT = {"kind": "flooding", "description": "도로가 잠겼어요 · the road is under water",
          "lon": 127.0276, "lat": 37.4979}


@pytest.fixture
def world(engine):
    return build_world(engine)


def _warning(world) -> dict:
    issued = world.client.post("/api/v1/alerts", json={"hazard": "heavy_rain", "level": "advisory", "area": "11680"},
                               headers=world.auth("operator"))
    assert issued.status_code == 201, issued.text
    [warning] = world.client.get("/api/v1/warnings").json()
    return warning


def test_an_operator_acknowledges_a_warning_once_and_everyone_sees_who(world):
    warning = _warning(world)
    assert warning["acknowledged_at"] is None
    first = world.client.post(f"/api/v1/warnings/{warning['id']}/acknowledge", headers=world.auth("operator"))
    assert first.status_code == 200, first.text
    assert first.json()["acknowledged_by"] and first.json()["acknowledged_at"]
    again = world.client.post(f"/api/v1/warnings/{warning['id']}/acknowledge", headers=world.auth("admin"))
    assert again.json()["acknowledged_by"] == first.json()["acknowledged_by"]  # the first stands
    [listed] = world.client.get("/api/v1/warnings").json()
    assert listed["acknowledged_at"] == first.json()["acknowledged_at"]


def test_only_staff_acknowledge_and_only_warnings_in_force(world):
    warning = _warning(world)
    assert_problem(world.client.post(f"/api/v1/warnings/{warning['id']}/acknowledge",
                                     headers=world.auth("citizen")), 403)
    assert_problem(world.client.post("/api/v1/warnings/9999/acknowledge", headers=world.auth("operator")), 404)
    cancelled = world.client.post(f"/api/v1/warnings/{warning['id']}/cancel", headers=world.auth("operator"))
    assert cancelled.status_code in (200, 201), cancelled.text
    assert_problem(world.client.post(f"/api/v1/warnings/{warning['id']}/acknowledge",
                                     headers=world.auth("operator")), 409)


def _report(world) -> dict:
    response = world.client.post("/api/v1/reports", json=REPORT, headers=world.auth("citizen"))
    assert response.status_code == 201, response.text
    return response.json()


def test_the_reporter_attaches_a_photo_and_staff_see_it(world):
    report = _report(world)
    sent = world.client.post(f"/api/v1/reports/{report['id']}/photos", content=PNG,
                             headers={**world.auth("citizen"), "Content-Type": "image/png"})
    assert sent.status_code == 201, sent.text
    assert sent.json()["content_type"] == "image/png" and sent.json()["size_bytes"] == len(PNG)
    photo = world.client.get(sent.headers["location"], headers=world.auth("operator"))
    assert photo.content == PNG and photo.headers["content-type"] == "image/png"
    assert [p["id"] for p in world.client.get(f"/api/v1/reports/{report['id']}/photos",
                                              headers=world.auth("operator")).json()] == [sent.json()["id"]]
    assert_problem(world.client.get(sent.headers["location"], headers=world.auth("citizen")), 403)


@pytest.mark.parametrize(("body", "content_type", "field"), [
    (b"GIF89a" + b"\x00" * 10, "image/gif", "body"),  # not a format we take
    (JPEG, "image/png", "header.content-type"),  # mislabelled
    (b"", "image/png", "body"),
])
def test_a_bad_photo_is_refused_with_its_reason_and_kept(world, engine, body, content_type, field):
    report = _report(world)
    refused = world.client.post(f"/api/v1/reports/{report['id']}/photos", content=body,
                                headers={**world.auth("citizen"), "Content-Type": content_type})
    problem = assert_problem(refused, 422)
    assert field in problem["detail"] or any(e.get("field") == field for e in problem.get("errors", []))
    with engine.connect() as conn:
        kept = conn.execute(select(dead_letters.c.source, dead_letters.c.reason)).all()
    assert [(s, r.split(":")[0]) for s, r in kept] == [(f"http:/api/v1/reports/{report['id']}/photos", field)]


def test_someone_else_cannot_add_photos_to_a_report(world):
    report = _report(world)
    other = world.client.post(f"/api/v1/reports/{report['id']}/photos", content=PNG,
                              headers={**world.auth("guardian"), "Content-Type": "image/png"})
    assert_problem(other, 403)


def test_a_refused_report_is_kept_with_its_reason(world, engine):
    bad = {**REPORT, "kind": "Big Hole!"}
    assert_problem(world.client.post("/api/v1/reports", json=bad, headers=world.auth("citizen")), 422, "body.kind")
    with engine.connect() as conn:
        [(source, reason, payload)] = conn.execute(
            select(dead_letters.c.source, dead_letters.c.reason, dead_letters.c.payload)).all()
    assert source == "http:/api/v1/reports" and reason.startswith("body.kind")
    assert "the road is under water" in payload  # what the citizen typed is still there


def test_the_district_panel_counts_people_shelters_and_warnings(world):
    world.client.post("/api/v1/places", json={"places": [{
        "kind": "facility", "ref": "test-bridge", "name_ko": "시험교", "area_code": "11680", "lon": 127.03, "lat": 37.5,
        "facility_type": "bridge", "safety_grade": "D"}]}, headers=world.auth("operator"))
    _warning(world)
    summary = world.client.get("/api/v1/areas/11680/summary").json()
    assert summary["name_ko"] == "강남구"
    assert summary["statistics"]["population"]["value"] > 0
    assert summary["places"]["shelter"] == 2 and summary["shelter_capacity"] == 950
    assert [f["name_ko"] for f in summary["facilities_at_risk"]] == ["시험교"]
    assert [(w["hazard"], w["level"]) for w in summary["warnings"]] == [("heavy_rain", "advisory")]
    assert world.client.get("/api/v1/areas/11110/summary").json()["warnings"] == []
