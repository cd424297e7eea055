"""Disasters, disaster-management projects and citizens' reports over HTTP."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from test_api_support import assert_problem, build_world

FLOOD = {
    "kind": "heavy_rain",
    "title": "강남역 일대 집중호우 침수",
    "started_at": "2022-08-08T20:00:00+09:00",
    "ended_at": "2022-08-09T06:00:00+09:00",
    "area_code": "11680",
    "lon": 127.0276,
    "lat": 37.4979,
    "injuries": 2,
    "evacuated": 150,
    "damage_krw": 1_200_000_000,
}
FIRE = {
    "kind": "fire",
    "title": "종로 상가 화재",
    "started_at": "2023-01-05T03:10:00Z",
    "area_code": "11110",
}
PROJECT = {
    "phase": "prevention",
    "title": "강남역 대심도 빗물배수터널",
    "area_code": "11680",
    "budget_krw": 350_000_000_000,
    "start_date": "2023-01-01",
    "end_date": "2027-12-31",
}


@pytest.fixture
def world(engine):
    return build_world(engine)


def post(world, path, body, role="operator"):
    return world.client.post(path, json=body, headers=world.auth(role))


# ── disasters ──────────────────────────────────────────────────────────────────────────


def test_recorded_disaster_is_returned_in_utc_with_its_category(world):
    response = post(world, "/api/v1/disasters", FLOOD)
    assert response.status_code == 201, response.text
    disaster = response.json()
    assert response.headers["location"] == f"/api/v1/disasters/{disaster['id']}"
    assert disaster["category"] == "natural"
    assert disaster["started_at"] == "2022-08-08T11:00:00Z"
    assert (disaster["deaths"], disaster["injuries"], disaster["evacuated"]) == (0, 2, 150)
    assert world.client.get(response.headers["location"]).json() == disaster
    fire = post(world, "/api/v1/disasters", FIRE).json()
    assert fire["category"] == "social"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"deaths": -1}, "body.deaths"),
        ({"injuries": 1.5}, "body.injuries"),
        ({"ended_at": "2022-08-08T19:59:00+09:00"}, "body.ended_at"),
        ({"started_at": "2022-08-08T20:00:00"}, "body.started_at"),  # no offset: ambiguous
        ({"kind": "meteor"}, "body.kind"),
        ({"lat": None}, "body.lat"),
        ({"area_code": "11999"}, "body.area_code"),
        ({"category": "social"}, "body.category"),  # derived from kind, never given
    ],
)
def test_invalid_disaster_names_the_field(world, change, field):
    assert_problem(post(world, "/api/v1/disasters", {**FLOOD, **change}), 422, field)
    assert world.client.get("/api/v1/disasters").json() == []


def test_disasters_filter_and_page(world):
    for body in (
        FLOOD,
        FIRE,
        {**FIRE, "title": "두 번째 화재", "started_at": "2023-02-01T00:00:00Z"},
    ):
        assert post(world, "/api/v1/disasters", body).status_code == 201
    client = world.client
    assert [d["title"] for d in client.get("/api/v1/disasters?kind=fire").json()] == [
        "두 번째 화재",
        "종로 상가 화재",
    ]
    assert [d["kind"] for d in client.get("/api/v1/disasters?area=11680").json()] == ["heavy_rain"]
    since = quote("2023-01-01T00:00:00+09:00")
    assert len(client.get(f"/api/v1/disasters?since={since}").json()) == 2
    # An unencoded "+" reaches us as a space; the offset is still understood.
    assert len(client.get("/api/v1/disasters?until=2023-01-01T00:00:00+09:00").json()) == 1
    first, second = (client.get(f"/api/v1/disasters?limit=1&offset={n}").json() for n in (0, 1))
    assert [first[0]["title"], second[0]["title"]] == ["두 번째 화재", "종로 상가 화재"]


def test_disaster_period_must_run_forward(world):
    query = "since=2023-02-01T00:00:00Z&until=2023-01-01T00:00:00Z"
    assert_problem(world.client.get(f"/api/v1/disasters?{query}"), 422, "query.until")


# ── projects ───────────────────────────────────────────────────────────────────────────


def test_district_official_records_a_project(world):
    response = post(world, "/api/v1/projects", PROJECT, role="district_official")
    assert response.status_code == 201, response.text
    project = response.json()
    assert (project["phase"], project["end_date"]) == ("prevention", "2027-12-31")
    listed = world.client.get("/api/v1/projects?phase=prevention&area=11680").json()
    assert [p["id"] for p in listed] == [project["id"]]
    assert world.client.get("/api/v1/projects?phase=recovery").json() == []


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"end_date": "2022-12-31"}, "body.end_date"),
        ({"evaluation_score": 101}, "body.evaluation_score"),
        ({"budget_krw": -5}, "body.budget_krw"),
        ({"phase": "celebration"}, "body.phase"),
    ],
)
def test_invalid_project_names_the_field(world, change, field):
    assert_problem(post(world, "/api/v1/projects", {**PROJECT, **change}, role="admin"), 422, field)


def test_unknown_phase_in_query_is_named(world):
    assert_problem(world.client.get("/api/v1/projects?phase=someday"), 422, "query.phase")


# ── citizens' reports ──────────────────────────────────────────────────────────────────


REPORT = {
    "kind": "sinkhole",
    "description": "인도에 지름 30cm 구멍",
    "area_code": "11680",
    "lon": 127.03,
    "lat": 37.5,
}


def test_citizen_reports_and_staff_read(world):
    response = post(world, "/api/v1/reports", REPORT, role="citizen")
    assert response.status_code == 201, response.text
    report = response.json()
    assert report["status"] == "new" and report["reported_at"].endswith("Z")
    assert "reporter_token_id" not in report
    staff_view = world.client.get("/api/v1/reports", headers=world.auth("operator")).json()
    assert [r["id"] for r in staff_view] == [report["id"]]
    assert staff_view[0]["reporter_token_id"] == world.token_ids["citizen"]
    one = world.client.get(response.headers["location"], headers=world.auth("operator"))
    assert one.json()["description"] == REPORT["description"]


def test_district_official_sees_reports_of_own_district_only(world):
    post(world, "/api/v1/reports", REPORT, role="citizen")
    jongno = {
        **REPORT,
        "area_code": "11110",
        "description": "종로 가로등 고장",
        "kind": "streetlight",
    }
    other = post(world, "/api/v1/reports", jongno, role="citizen").json()
    official = world.auth("district_official")
    seen = world.client.get("/api/v1/reports", headers=official).json()
    assert [r["area_code"] for r in seen] == ["11680"]
    assert_problem(
        world.client.get("/api/v1/reports?area=11110", headers=official), 403, "query.area"
    )
    assert_problem(world.client.get(f"/api/v1/reports/{other['id']}", headers=official), 403)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"kind": "Big Hole!"}, "body.kind"),
        ({"description": ""}, "body.description"),
        ({"lon": None}, "body.lat"),
        ({"reporter": "me"}, "body.reporter"),
    ],
)
def test_invalid_report_names_the_field(world, change, field):
    assert_problem(post(world, "/api/v1/reports", {**REPORT, **change}, role="citizen"), 422, field)
