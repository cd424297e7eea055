"""The API's edges: problem+json errors, body limits, tokens and roles, the audit log, health,
metrics and docs. Runs on SQLite and on PostgreSQL (the ``engine`` fixture)."""

from __future__ import annotations

import json

import anyio
import pytest
from fastapi.testclient import TestClient
from test_api_support import MAX_BODY_BYTES, assert_problem, build_world

from haechi.api import create_app
from haechi.core.settings import Settings
from haechi.store import records
from haechi.store.db import make_engine

FLOOD = {
    "kind": "heavy_rain",
    "title": "강남역 일대 집중호우 침수",
    "started_at": "2022-08-08T20:00:00+09:00",
    "ended_at": "2022-08-09T06:00:00+09:00",
    "area_code": "11680",
    "deaths": 0,
    "injuries": 2,
}


@pytest.fixture
def world(engine):
    return build_world(engine)


# ── problem+json on every error path ───────────────────────────────────────────────────


def test_unknown_body_field_is_refused_by_name(world):
    response = world.client.post(
        "/api/v1/disasters", json={**FLOOD, "casualties": 3}, headers=world.auth("operator")
    )
    problem = assert_problem(response, 422, "body.casualties")
    assert problem["type"] == "/problems/invalid-request"
    assert "body.casualties" in problem["detail"]


def test_wrong_type_names_the_field(world):
    response = world.client.post(
        "/api/v1/disasters", json={**FLOOD, "deaths": "many"}, headers=world.auth("operator")
    )
    assert_problem(response, 422, "body.deaths")


def test_missing_field_names_the_field(world):
    body = {k: v for k, v in FLOOD.items() if k != "title"}
    response = world.client.post("/api/v1/disasters", json=body, headers=world.auth("operator"))
    assert_problem(response, 422, "body.title")


def test_every_invalid_field_is_listed_at_once(world):
    bad = {**FLOOD, "deaths": -1, "kind": "meteor", "lon": 127.0}
    response = world.client.post("/api/v1/disasters", json=bad, headers=world.auth("operator"))
    problem = assert_problem(response, 422, "body.deaths", "body.kind", "body.lat")
    assert len(problem["errors"]) == 3


def test_malformed_json_is_a_400_with_a_clear_detail(world):
    response = world.client.post(
        "/api/v1/disasters",
        content=b'{"kind": "fire", "title": ',
        headers={**world.auth("operator"), "Content-Type": "application/json"},
    )
    problem = assert_problem(response, 400, "body")
    assert problem["type"] == "/problems/malformed-json"
    assert "not valid JSON" in problem["detail"]


def test_a_body_that_is_not_json_is_a_415(world):
    response = world.client.post(
        "/api/v1/disasters",
        content=b"kind=fire&title=x",
        headers={**world.auth("operator"), "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert_problem(response, 415)


def test_oversized_body_with_content_length_is_413(world):
    body = {**FLOOD, "description": "x" * MAX_BODY_BYTES}
    response = world.client.post("/api/v1/disasters", json=body, headers=world.auth("operator"))
    problem = assert_problem(response, 413)
    assert str(MAX_BODY_BYTES) in problem["detail"]
    assert world.client.get("/api/v1/disasters").json() == []


def test_oversized_chunked_body_is_413(world):
    response = world.client.post(
        "/api/v1/disasters",
        content=(b" " * 1024 for _ in range(50)),
        headers={**world.auth("operator"), "Content-Type": "application/json"},
    )
    assert "content-length" not in response.request.headers
    assert_problem(response, 413)


def test_chunked_body_stops_being_read_at_the_limit(world):
    """Drive the ASGI app directly: the test client would buffer a chunked body whole."""
    chunk, offered = b" " * 1024, 50
    pulled: list[int] = []
    sent: list[dict] = []

    async def receive() -> dict:
        pulled.append(len(pulled))
        return {"type": "http.request", "body": chunk, "more_body": len(pulled) < offered}

    async def send(message: dict) -> None:
        sent.append(message)

    headers = [(b"content-type", b"application/json"), (b"transfer-encoding", b"chunked")]
    headers += [(k.lower().encode(), v.encode()) for k, v in world.auth("operator").items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/api/v1/disasters",
        "raw_path": b"/api/v1/disasters",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
    }
    anyio.run(world.client.app, scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 413
    assert len(pulled) <= MAX_BODY_BYTES // len(chunk) + 1 < offered


def test_a_body_just_under_the_limit_is_read(world):
    description = "x" * (MAX_BODY_BYTES - len(json.dumps(FLOOD)) - 40)
    body = json.dumps({**FLOOD, "description": description}).encode()
    assert len(body) <= MAX_BODY_BYTES
    response = world.client.post(
        "/api/v1/disasters",
        content=body,
        headers={**world.auth("operator"), "Content-Type": "application/json"},
    )
    assert response.status_code == 201, response.text


def test_unknown_route_is_404_problem(world):
    problem = assert_problem(world.client.get("/api/v1/earthquakes"), 404)
    assert "/api/v1/earthquakes" in problem["detail"]


def test_wrong_method_is_405_problem_with_allow(world):
    response = world.client.put("/api/v1/areas", json={}, headers=world.auth("admin"))
    assert_problem(response, 405)
    assert response.headers["allow"] == "GET"


@pytest.mark.parametrize(
    "path",
    ["/api/v1/disasters/999", "/api/v1/places/999", "/api/v1/areas/11999", "/api/v1/projects/7"],
)
def test_unknown_id_is_404_problem(world, path):
    problem = assert_problem(world.client.get(path), 404)
    assert problem["type"] == "/problems/not-found"


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("lon=200&lat=37.5", "query.lon"),
        ("lon=127&lat=abc", "query.lat"),
        ("lat=37.5", "query.lon"),
        ("lon=127&lat=37.5&within_m=-5", "query.within_m"),
        ("lon=127&lat=37.5&kinds=shelter", "query.kinds"),  # misspelt, not silently ignored
    ],
)
def test_bad_query_parameter_is_named(world, query, field):
    assert_problem(world.client.get(f"/api/v1/places/nearest?{query}"), 422, field)


def test_bad_path_parameter_is_named(world):
    assert_problem(world.client.get("/api/v1/places/first"), 422, "path.place_id")


def test_unexpected_error_is_500_without_internals(engine, monkeypatch):
    world = build_world(engine, raise_server_exceptions=False)

    def explode(*_args, **_kwargs):
        raise RuntimeError("secret connection string postgres://admin:hunter2@db")

    monkeypatch.setattr(records, "add_disaster", explode)
    response = world.client.post("/api/v1/disasters", json=FLOOD, headers=world.auth("operator"))
    problem = assert_problem(response, 500)
    assert "hunter2" not in response.text and "Traceback" not in response.text
    assert problem["error_id"] in problem["detail"]
    assert world.audit()[-1]["status"] == 500


def test_problem_titles_follow_accept_language(world):
    korean = world.client.get(
        "/api/v1/places/999", headers={"Accept-Language": "ko-KR,ko;q=0.9,en;q=0.8"}
    )
    english = world.client.get("/api/v1/places/999", headers={"Accept-Language": "en;q=1,ko;q=0.5"})
    assert korean.json()["title"] == "찾을 수 없음"
    assert english.json()["title"] == "Not found"


def test_problem_types_are_documented_where_they_point(world):
    problem = world.client.get("/api/v1/nowhere").json()
    doc = world.client.get(problem["type"])
    assert doc.status_code == 200
    assert doc.json()["title"] == {"en": "Not found", "ko": "찾을 수 없음"}


# ── tokens and roles ───────────────────────────────────────────────────────────────────


def test_anonymous_reads_public_data(world):
    for path in ("/api/v1/areas", "/api/v1/places", "/api/v1/disasters", "/api/v1/projects"):
        assert world.client.get(path).status_code == 200, path


def test_anonymous_write_is_401_with_a_bearer_challenge(world):
    response = world.client.post("/api/v1/disasters", json=FLOOD)
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize("path", ["/api/v1/reports", "/api/v1/tokens", "/api/v1/audit"])
def test_anonymous_cannot_read_private_data(world, path):
    assert_problem(world.client.get(path), 401)


@pytest.mark.parametrize(
    "authorization", ["Bearer hc_not-a-real-token", "Basic YWRtaW46YWRtaW4=", "Bearer"]
)
def test_unknown_or_malformed_credentials_are_401(world, authorization):
    response = world.client.post(
        "/api/v1/reports",
        json={"kind": "pothole", "description": "x"},
        headers={"Authorization": authorization},
    )
    assert_problem(response, 401)
    assert 'error="invalid_token"' in response.headers["www-authenticate"]


def test_revoked_token_is_401(world):
    citizen = world.auth("citizen")
    report = {"kind": "pothole", "description": "도로 파임"}
    assert world.client.post("/api/v1/reports", json=report, headers=citizen).status_code == 201
    revoked = world.client.delete(
        f"/api/v1/tokens/{world.token_ids['citizen']}", headers=world.auth("admin")
    )
    assert revoked.status_code == 204
    problem = assert_problem(
        world.client.post("/api/v1/reports", json=report, headers=citizen), 401
    )
    assert "revoked" in problem["detail"]


@pytest.mark.parametrize(
    ("role", "method", "path"),
    [
        ("citizen", "POST", "/api/v1/disasters"),
        ("guardian", "POST", "/api/v1/places"),
        ("device", "POST", "/api/v1/disasters"),
        ("operator", "POST", "/api/v1/projects"),
        ("citizen", "GET", "/api/v1/reports"),
        ("guardian", "GET", "/api/v1/reports"),
        ("operator", "GET", "/api/v1/tokens"),
        ("district_official", "POST", "/api/v1/tokens"),
        ("operator", "GET", "/api/v1/audit"),
    ],
)
def test_token_without_the_role_is_403(world, role, method, path):
    response = world.client.request(method, path, json={}, headers=world.auth(role))
    problem = assert_problem(response, 403)
    assert role in problem["detail"]


def test_admin_passes_every_role_check(world):
    admin = world.auth("admin")
    project = {"phase": "prevention", "title": "빗물받이 정비", "area_code": "11680"}
    assert world.client.post("/api/v1/projects", json=project, headers=admin).status_code == 201
    assert world.client.post("/api/v1/disasters", json=FLOOD, headers=admin).status_code == 201
    assert world.client.get("/api/v1/reports", headers=admin).status_code == 200
    assert world.client.get("/api/v1/audit", headers=admin).status_code == 200


def test_district_official_writes_only_inside_own_district(world):
    official = world.auth("district_official")  # Gangnam, 11680
    inside = world.client.post("/api/v1/disasters", json=FLOOD, headers=official)
    assert inside.status_code == 201, inside.text
    elsewhere = world.client.post(
        "/api/v1/disasters", json={**FLOOD, "area_code": "11110"}, headers=official
    )
    assert_problem(elsewhere, 403, "body.area_code")
    nowhere = world.client.post(
        "/api/v1/disasters",
        json={k: v for k, v in FLOOD.items() if k != "area_code"},
        headers=official,
    )
    assert_problem(nowhere, 403, "body.area_code")


# ── the audit log ──────────────────────────────────────────────────────────────────────


def test_every_write_leaves_an_audit_row_accepted_or_refused(world):
    client = world.client
    answers = [
        client.post("/api/v1/disasters", json=FLOOD, headers=world.auth("operator")),  # 201
        client.post(
            "/api/v1/disasters", json={**FLOOD, "x": 1}, headers=world.auth("operator")
        ),  # 422
        client.post("/api/v1/disasters", json=FLOOD),  # 401
        client.post("/api/v1/disasters", json=FLOOD, headers=world.auth("citizen")),  # 403
        client.post(
            "/api/v1/disasters", content=b"{" * 5000, headers=world.auth("operator")
        ),  # 413
        client.delete("/api/v1/tokens/999", headers=world.auth("admin")),  # 404
        client.put("/api/v1/areas", json={}),  # 405
        client.post("/api/v1/nowhere", json={}),  # 404 route
    ]
    rows = world.audit()
    assert [r["status"] for r in rows] == [a.status_code for a in answers]
    assert [a.status_code for a in answers] == [201, 422, 401, 403, 413, 404, 405, 404]

    created, invalid, anonymous, forbidden = rows[:4]
    assert (created["actor"], created["role"]) == ("operator-1", "operator")
    assert created["action"] == "POST /api/v1/disasters"
    assert created["target"] == answers[0].headers["location"]
    assert invalid["detail"]["problem"]["errors"][0]["field"] == "body.x"
    assert anonymous["actor"] == "anonymous" and anonymous["role"] is None
    assert (forbidden["actor"], forbidden["status"]) == ("citizen-1", 403)
    assert rows[4]["actor"] == "operator-1"  # known even when the body was refused unread


def test_reads_are_not_audited(world):
    world.client.get("/api/v1/areas")
    world.client.get("/api/v1/reports", headers=world.auth("operator"))
    assert world.audit() == []


# ── health, metrics, docs ──────────────────────────────────────────────────────────────


def test_healthz_reports_the_schema_revision(world):
    response = world.client.get("/healthz")
    assert response.status_code == 200
    health = response.json()
    assert health["status"] == "ok"
    assert health["revision"] == health["head"] and health["revision"]
    assert health["database"] == world.engine.dialect.name


def test_healthz_is_503_when_the_schema_is_missing(tmp_path):
    bare = make_engine(f"sqlite:///{tmp_path / 'never-migrated.db'}")
    client = TestClient(create_app(bare, Settings()))
    problem = assert_problem(client.get("/healthz"), 503)
    assert "haechi db upgrade" in problem["detail"]
    bare.dispose()


def test_metrics_count_requests_by_route_template_and_status(world):
    world.client.get("/api/v1/places/1")
    world.client.get("/api/v1/places/998")
    world.client.get("/api/v1/places/999")
    response = world.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    lines = response.text.splitlines()
    route = 'route="/api/v1/places/{place_id}"'
    assert f'haechi_http_requests_total{{method="GET",{route},status="404"}} 2.0' in lines
    assert f'haechi_http_requests_total{{method="GET",{route},status="200"}} 1.0' in lines
    assert any(line.startswith("haechi_http_request_duration_seconds_bucket") for line in lines)
    assert 'haechi_places{kind="shelter"} 3.0' in lines
    assert "haechi_database_up 1.0" in lines


def test_openapi_and_docs_are_bilingual(world):
    spec = world.client.get("/openapi.json").json()
    assert spec["openapi"].startswith("3.1")
    assert "해치" in spec["info"]["title"] and "Urban safety" in spec["info"]["title"]
    assert (
        "통합플랫폼" in spec["info"]["description"]
        and "integrated platform" in spec["info"]["description"]
    )
    assert spec["components"]["securitySchemes"]["apiToken"]["scheme"] == "bearer"
    error = spec["paths"]["/api/v1/disasters"]["post"]["responses"]["422"]
    assert "application/problem+json" in error["content"]
    docs = world.client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
