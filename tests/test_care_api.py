"""Care over HTTP, on SQLite and PostgreSQL: consent first, who may read positions, the access log,
exports without positions, refused reports kept, and the purge."""

from __future__ import annotations

from datetime import timedelta

import pytest
from care_support import family
from shapely.geometry import box, mapping
from sqlalchemy import func, select
from test_api_support import assert_problem, build_world
from typer.testing import CliRunner

from haechi.care import repository
from haechi.cli import app as cli
from haechi.core.clock import utcnow
from haechi.store import deadletters, places
from haechi.store.schema import care_activity, care_positions

CONSENT = {"consented_by": "김보호", "relation": "parent", "purpose": "등하교 위치 확인",
           "valid_until": "2099-01-01T00:00:00+09:00"}


@pytest.fixture
def world(engine):
    return build_world(engine)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def store_positions(engine, ward_id: int, device_ref: str, ages_h: list[float]) -> None:
    with engine.begin() as conn:
        device = repository.devices_by_ref(conn, [device_ref])[device_ref]
        repository.save_positions(conn, [{"ward_id": ward_id, "device_id": device["id"],
                                          "at": utcnow() - timedelta(hours=h), "received_at": utcnow(),
                                          "lon": 127.03, "lat": 37.5 + h / 1000, "accuracy_m": 5.0}
                                         for h in ages_h])


def test_a_guardian_registers_a_ward_only_with_consent(world):
    me = world.client.put("/api/v1/care/me", json={"name": "김보호", "language": "vi", "needs": ["easy_read"]},
                          headers=world.auth("guardian"))
    assert me.status_code == 200, me.text
    assert (me.json()["language"], me.json()["needs"]) == ("vi", ["easy_read"])
    without = world.client.post("/api/v1/care/wards", json={"kind": "child", "alias": "민준"},
                                headers=world.auth("guardian"))
    assert_problem(without, 422, "body.consent")
    expired = world.client.post("/api/v1/care/wards", json={
        "kind": "child", "alias": "민준", "consent": CONSENT | {"valid_until": "2020-01-01T00:00:00Z"}},
        headers=world.auth("guardian"))
    assert_problem(expired, 422, "body.consent.valid_until")
    made = world.client.post("/api/v1/care/wards", json={"kind": "child", "alias": "민준", "area_code": "11680",
                                                         "consent": CONSENT}, headers=world.auth("guardian"))
    assert made.status_code == 201, made.text
    [consent] = made.json()["consents"]
    assert (consent["consented_by"], consent["purpose"], consent["recorded_by"]) == (
        "김보호", "등하교 위치 확인", "guardian-1")
    ward = world.client.get(f"/api/v1/care/wards/{made.json()['id']}", headers=world.auth("guardian")).json()
    assert ward["consent_in_force"]


@pytest.mark.parametrize(("url", "reason"), [
    ("http://127.0.0.1:8080/hook", "must use https"),
    ("https://169.254.169.254/latest/meta-data/", "link-local"),
    ("https://[::1]/hook", "loopback"),
    ("https://localhost/hook", "localhost resolves to 127.0.0.1"),
])
def test_a_guardian_webhook_into_this_hosts_network_is_refused(world, url, reason):
    me = world.client.put("/api/v1/care/me", json={"name": "김보호", "webhook_url": url},
                          headers=world.auth("guardian"))
    assert reason in assert_problem(me, 422, "body.webhook_url")["detail"]
    assert_problem(world.client.get("/api/v1/care/me", headers=world.auth("guardian")), 403)  # no profile made


def test_only_guardian_tokens_bound_to_a_profile_manage_wards(world):
    assert_problem(world.client.get("/api/v1/care/wards", headers=world.auth("citizen")), 403)
    assert_problem(world.client.get("/api/v1/care/wards", headers=world.auth("guardian")), 403)  # no profile yet
    assert_problem(world.client.get("/api/v1/care/wards"), 401)


def test_a_guardian_cannot_read_another_wards_positions_and_the_attempt_is_logged(world):
    mine, theirs = family(world.engine, alias="민준"), family(world.engine, alias="서연")
    store_positions(world.engine, theirs.ward["id"], theirs.devices["tracker"], [0.1])
    own = world.client.get(f"/api/v1/care/wards/{mine.ward['id']}/positions", headers=bearer(mine.token))
    assert own.status_code == 200 and own.json()["basis"] == "guardian"
    other = world.client.get(f"/api/v1/care/wards/{theirs.ward['id']}/positions", headers=bearer(mine.token))
    assert_problem(other, 403, "path.ward_id")
    assert "127.03" not in other.text
    assert_problem(world.client.get(f"/api/v1/care/wards/{theirs.ward['id']}", headers=bearer(mine.token)), 403)
    assert_problem(world.client.get(f"/api/v1/care/wards/{theirs.ward['id']}/access-log",
                                    headers=bearer(mine.token)), 403)
    log = world.client.get(f"/api/v1/care/wards/{theirs.ward['id']}/access-log", headers=bearer(theirs.token)).json()
    assert [(x["actor"], x["role"], x["action"]) for x in log] == [
        (mine.token_name, "guardian", "refused: read positions")]


def test_an_operator_reads_positions_only_while_a_missing_person_incident_is_open(world):
    f = family(world.engine, kind="dementia")
    store_positions(world.engine, f.ward["id"], f.devices["tracker"], [0.2, 0.1])
    url = f"/api/v1/care/wards/{f.ward['id']}/positions"
    assert_problem(world.client.get(url, headers=world.auth("operator")), 403, "path.ward_id")
    assert_problem(world.client.get(url, headers=world.auth("admin")), 403, "path.ward_id")
    opened = world.client.post(f"/api/v1/care/wards/{f.ward['id']}/missing", headers=bearer(f.token))
    assert opened.status_code == 201, opened.text
    assert opened.json()["center"] == "119"
    during = world.client.get(url, headers=world.auth("operator"))
    assert during.status_code == 200 and len(during.json()["positions"]) == 2
    assert during.json()["basis"] == f"incident:{opened.json()['incident_id']}"
    world.client.post(f"/api/v1/care/wards/{f.ward['id']}/missing/close", headers=bearer(f.token))
    assert_problem(world.client.get(url, headers=world.auth("operator")), 403)
    log = world.client.get(f"/api/v1/care/wards/{f.ward['id']}/access-log", headers=bearer(f.token)).json()
    assert [(x["actor"], x["action"]) for x in reversed(log)] == [
        ("operator-1", "refused: read positions"), ("admin-1", "refused: read positions"),
        ("operator-1", "read positions"), ("operator-1", "refused: read positions")]


def test_exports_contain_no_positions(world):
    f = family(world.engine)
    store_positions(world.engine, f.ward["id"], f.devices["tracker"], [0.1])
    with world.engine.begin() as conn:
        repository.add_alert(conn, {"ward_id": f.ward["id"], "kind": "sos", "at": utcnow(), "lon": 127.0301,
                                    "lat": 37.5123,
                                    "detail": {"to": {"guardians": [], "centers": [], "district": None}}})
    exported = world.client.get(f"/api/v1/care/wards/{f.ward['id']}/export", headers=bearer(f.token))
    assert exported.status_code == 200
    body = exported.json()
    assert body["ward"]["alias"] == "민준" and body["consents"] and body["alerts"][0]["kind"] == "sos"
    assert "127.03" not in exported.text and "37.51" not in exported.text and '"lon"' not in exported.text
    assert "positions" not in body


def test_http_reports_refuse_bad_positions_and_keep_them(world):
    f = family(world.engine)
    tag = f.devices["tracker"]
    now = utcnow()
    response = world.client.post("/api/v1/care/reports/position", headers=world.auth("device"), json=[
        {"device": tag, "at": now.isoformat(), "lon": 127.001, "lat": 37.501},
        {"device": tag, "at": now.isoformat(), "lon": 127.001, "lat": 95},
        {"device": tag, "at": (now + timedelta(hours=2)).isoformat(), "lon": 127.001, "lat": 37.501},
        {"device": "ghost", "at": now.isoformat(), "lon": 127.001, "lat": 37.501},
    ])
    assert response.status_code == 200, response.text
    assert (response.json()["positions"], response.json()["refused"]) == (1, 3)
    assert response.json()["first_refusal"]["field"] == "lat"
    with world.engine.begin() as conn:
        letters = deadletters.pending(conn, source="http:/api/v1/care/reports/position")
    assert len(letters) == 3 and all("37.501" not in x["payload"] for x in letters)
    assert_problem(world.client.post("/api/v1/care/reports/position", headers=world.auth("citizen"), json=[]), 403)


def test_withdrawing_consent_over_http_refuses_later_reports(world):
    f = family(world.engine)
    url = f"/api/v1/care/wards/{f.ward['id']}/consents"
    assert world.client.delete(url, headers=bearer(f.token)).json()["withdrawn"] == 1
    report = {"device": f.devices["tracker"], "at": utcnow().isoformat(), "lon": 127.001, "lat": 37.501}
    response = world.client.post("/api/v1/care/reports/position", headers=world.auth("device"), json=report)
    assert (response.json()["positions"], response.json()["refused"]) == (0, 1)
    with world.engine.begin() as conn:
        [letter] = deadletters.pending(conn, source="http:/api/v1/care")
        assert repository.positions(conn, f.ward["id"]) == []
    assert letter["reason"] == "no consent" and "127.001" not in letter["payload"]
    consents = world.client.get(url, headers=bearer(f.token)).json()
    assert consents[0]["withdrawn_at"] is not None


def test_zones_trips_and_safe_spots(world):
    f = family(world.engine, kind="walker", zones=False)
    with world.engine.begin() as conn:
        places.save_places(conn, [
            {"kind": "store_24h", "ref": "S1", "name_ko": "안심편의점", "lon": 127.0305, "lat": 37.5002, "source": "t"},
            {"kind": "police_box", "ref": "P1", "name_ko": "역삼지구대", "lon": 127.035, "lat": 37.5001, "source": "t"},
            {"kind": "police_box", "ref": "P2", "name_ko": "먼 파출소", "lon": 127.09, "lat": 37.56, "source": "t"}])
    zone = world.client.post(f"/api/v1/care/wards/{f.ward['id']}/zones", headers=bearer(f.token), json={
        "kind": "home", "name": "집", "lon": 127.04, "lat": 37.5, "radius_m": 80})
    assert zone.status_code == 201 and zone.json()["geometry"]["type"] == "Polygon"
    bad = world.client.post(f"/api/v1/care/wards/{f.ward['id']}/zones", headers=bearer(f.token), json={
        "kind": "school", "name": "x", "geometry": mapping(box(0, 0, 1, 1)),
        "schedule": [{"start": "15:00", "end": "09:00"}]})
    assert_problem(bad, 422, "body.schedule")
    route = {"type": "LineString", "coordinates": [[127.03, 37.5], [127.04, 37.5]]}
    trip = world.client.post(f"/api/v1/care/wards/{f.ward['id']}/trips", headers=bearer(f.token), json={
        "route": route, "expected_at": (utcnow() + timedelta(minutes=20)).isoformat()})
    assert trip.status_code == 201, trip.text
    assert {s["name_ko"] for s in trip.json()["safe_spots"]} == {"안심편의점", "역삼지구대"}
    again = world.client.post(f"/api/v1/care/wards/{f.ward['id']}/trips", headers=bearer(f.token), json={
        "route": route, "expected_at": (utcnow() + timedelta(minutes=20)).isoformat()})
    assert_problem(again, 409)
    point = world.client.post(f"/api/v1/care/wards/{f.ward['id']}/trips", headers=bearer(f.token), json={
        "route": {"type": "Point", "coordinates": [127, 37]}, "expected_at": "2099-01-01T00:00:00Z"})
    assert_problem(point, 422, "body.route")
    ended = world.client.post(f"/api/v1/care/trips/{trip.json()['id']}/end", headers=bearer(f.token))
    assert ended.json()["status"] == "cancelled"


def test_school_zones_are_public_geojson_and_parents_get_school_safety(world):
    with world.engine.begin() as conn:
        places.save_places(conn, [{"kind": "school_zone", "ref": "SZ1", "name_ko": "역삼초 어린이보호구역",
                                   "lon": 127.031, "lat": 37.496, "school_name": "역삼초등학교", "radius_m": 300,
                                   "area_code": "11680", "source": "t"}])
    zones = world.client.get("/api/v1/care/school-zones?bbox=127,37.4,127.1,37.6").json()
    [feature] = zones["features"]
    assert feature["geometry"]["type"] == "Polygon" and feature["properties"]["school_name"] == "역삼초등학교"
    assert_problem(world.client.get("/api/v1/care/school-zones?bbox=1,2,3"), 422, "query.bbox")
    f = family(world.engine, zones=False)
    with world.engine.begin() as conn:
        repository.add_zone(conn, f.ward["id"], {"kind": "school", "name": "역삼초등학교",
                                                 "geometry": mapping(box(127.030, 37.495, 127.032, 37.497)),
                                                 "schedule": []})
    info = world.client.get(f"/api/v1/care/wards/{f.ward['id']}/school-safety", headers=bearer(f.token))
    assert info.status_code == 200, info.text
    [school] = info.json()["schools"]
    assert [z["name_ko"] for z in school["school_zones"]] == ["역삼초 어린이보호구역"]
    assert school["warnings"] == [] and isinstance(info.json()["school_hours"], bool)


# ── retention and purge: SQLite and PostgreSQL ──────────────────────────────────────────


def counts(engine, ward_id: int) -> tuple[int, int]:
    with engine.begin() as conn:
        return tuple(conn.execute(select(func.count()).select_from(t).where(t.c.ward_id == ward_id)).scalar()
                     for t in (care_positions, care_activity))


def test_purge_removes_positions_and_activity_older_than_the_retention(world):
    f = family(world.engine, devices=("tracker", "door"))
    store_positions(world.engine, f.ward["id"], f.devices["tracker"], [30, 25, 1, 0.1])
    with world.engine.begin() as conn:
        door = repository.devices_by_ref(conn, [f.devices["door"]])[f.devices["door"]]
        repository.save_activity(conn, [{"ward_id": f.ward["id"], "device_id": door["id"],
                                         "at": utcnow() - timedelta(hours=h), "kind": "door"} for h in (48, 2)])
        old = repository.add_alert(conn, {"ward_id": f.ward["id"], "kind": "dwell",
                                          "at": utcnow() - timedelta(hours=26), "lon": 127.03, "lat": 37.53,
                                          "detail": {}})
    removed = world.client.app.state.care.purge()
    assert (removed["positions"], removed["activity"], removed["alert_positions"]) == (2, 1, 1)
    assert counts(world.engine, f.ward["id"]) == (2, 1)
    with world.engine.begin() as conn:
        ages = sorted(p["at"] for p in repository.positions(conn, f.ward["id"]))
        assert all(utcnow() - at < timedelta(hours=24) for at in ages)
        cleared = repository.get_alert(conn, old["id"])
    assert (cleared["lon"], cleared["lat"], cleared["kind"]) == (None, None, "dwell")


def test_haechi_care_purge_command(db_url, engine):
    f = family(engine)
    store_positions(engine, f.ward["id"], f.devices["tracker"], [3, 1])
    result = CliRunner().invoke(cli, ["care", "purge", "--database-url", db_url, "--retention-h", "2"])
    assert result.exit_code == 0, result.output
    assert "1 positions" in result.output
    assert counts(engine, f.ward["id"]) == (1, 0)


def test_the_missing_person_incident_holds_no_track_and_operators_cannot_open_one(world):
    """The track stays in the care tables (reads logged, purged); an operator cannot grant
    themselves access by reporting a ward missing; a ward found and lost again can be reported again."""
    f = family(world.engine, kind="dementia")
    store_positions(world.engine, f.ward["id"], f.devices["tracker"], [0.3, 0.2, 0.1])
    missing = f"/api/v1/care/wards/{f.ward['id']}/missing"
    assert_problem(world.client.post(missing, headers=world.auth("operator")), 403)
    opened = world.client.post(missing, headers=bearer(f.token))
    assert opened.status_code == 201, opened.text
    incident = world.client.get(f"/api/v1/incidents/{opened.json()['incident_id']}", headers=world.auth("operator"))
    detail = incident.json()["detail"]
    assert detail["track_points"] == 3 and detail["track"].endswith(f"/care/wards/{f.ward['id']}/positions")
    assert_problem(world.client.post(missing, headers=bearer(f.token)), 409)  # one search at a time
    world.client.post(f"{missing}/close", headers=bearer(f.token))
    again = world.client.post(missing, headers=bearer(f.token))
    assert again.status_code == 201, again.text


def test_a_device_speaks_only_with_the_token_it_first_reported_with(world):
    f = family(world.engine)
    report = {"device": f.devices["tracker"], "at": utcnow().isoformat(), "lon": 127.001, "lat": 37.501}
    first = world.client.post("/api/v1/care/reports/position", json=report, headers=world.auth("device"))
    assert first.status_code == 200 and first.json()["positions"] == 1, first.text
    with world.engine.begin() as conn:
        from haechi.store import access

        other = access.create_token(conn, "another-device", "device")[1]
    forged = world.client.post("/api/v1/care/reports/sos", json={**report, "at": utcnow().isoformat()},
                               headers=bearer(other))
    assert forged.status_code == 200 and forged.json()["refused"] == 1
    with world.engine.connect() as conn:
        from sqlalchemy import select

        from haechi.store.schema import dead_letters
        reasons = conn.execute(select(dead_letters.c.reason)).scalars().all()
    assert any("another token" in r for r in reasons)


def test_an_unreadable_report_is_kept_without_its_bytes(world):
    from sqlalchemy import select

    from haechi.store.schema import dead_letters

    sent = b'{"device": "x", "lon": 127.0312, "lat": 37.5'  # cut off in the middle
    refused = world.client.post("/api/v1/care/reports/position", content=sent,
                                headers={**world.auth("device"), "Content-Type": "application/json"})
    assert_problem(refused, 422)
    with world.engine.connect() as conn:
        [(reason, payload)] = conn.execute(select(dead_letters.c.reason, dead_letters.c.payload)).all()
    assert "not valid JSON" in reason and "127.03" not in payload
