"""Sensing over HTTP: bulk upload in three formats, refusals, live state and the SSE stream."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from conftest import LiveServer, SseListener
from fastapi.testclient import TestClient

from haechi.api.app import create_app
from haechi.cities.load import load_city
from haechi.store import access, deadletters, sensing

T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)


@pytest.fixture
def city(engine):
    """The Seoul pack (its gauges have datastreams) and a device token."""
    load_city(engine, "seoul")
    with engine.begin() as conn:
        _, token = access.create_token(conn, "gauge gateway", "device")
        streams = {p["name"]: p["id"] for p in sensing.stream_profiles(conn)}
    return streams, {"Authorization": f"Bearer {token}"}


def obs(stream, minutes, result, **extra):
    return {"datastream_id": stream, "phenomenon_time": (T0 + timedelta(minutes=minutes)).isoformat(),
            "result": result, **extra}


def test_json_array_upload_stores_converts_and_reports(engine, city):
    streams, auth = city
    level = streams["Hangang Bridge water level"]
    body = [obs(level, 10 * i, 800 + i, unit="cm") for i in range(12)] + [obs(level, 0, "high")]
    client = TestClient(create_app(engine))
    answer = client.post("/api/v1/observations", json=body, headers=auth)
    assert answer.status_code == 200, answer.text
    report = answer.json()
    assert (report["received"], report["stored"], report["rejected"]) == (13, 12, 1)
    assert report["rejections"] == [{"index": 12, "field": "result", "reason": "result must be a number (got 'high')"}]
    again = client.post("/api/v1/observations", json=body[:12], headers=auth).json()
    assert (again["stored"], again["duplicates"]) == (0, 12)
    with engine.connect() as conn:
        assert sensing.observations_of(conn, level, limit=1)[0]["result"] == 8.11
        assert "result must be a number" in deadletters.pending(conn)[0]["reason"]


def test_ndjson_and_csv_uploads(engine, city):
    streams, auth = city
    flow = streams["Hangang Bridge discharge"]
    client = TestClient(create_app(engine))
    ndjson = "\n".join(json.dumps(obs(flow, i, 1000.0 + i)) for i in range(5)) + "\n{broken\n"
    report = client.post("/api/v1/observations", content=ndjson,
                         headers=auth | {"Content-Type": "application/x-ndjson"}).json()
    assert (report["stored"], report["rejected"], report["rejections"][0]["index"]) == (5, 1, 5)
    csv = "datastream_id,phenomenon_time,result\n" + "\n".join(
        f"{flow},{(T0 + timedelta(minutes=30 + i)).isoformat()},{2000 + i}" for i in range(4)) + "\n"
    report = client.post("/api/v1/observations", content=csv, headers=auth | {"Content-Type": "text/csv"}).json()
    assert report["stored"] == 4
    with engine.connect() as conn:
        assert sensing.count_observations(conn) == 9


@pytest.mark.parametrize(("body", "field"), [
    ({"datastream_id": 1, "phenomenon_time": "2024-01-01T00:00:00", "result": 1}, "body.phenomenon_time"),
    ({"datastream_id": 1, "phenomenon_time": "2024-01-01T00:00:00Z", "result": "NaN"}, "body.result"),
    ({"datastream_id": 99999, "phenomenon_time": "2024-01-01T00:00:00Z", "result": 1}, "body.datastream_id"),
])
def test_a_single_bad_observation_is_a_problem_naming_the_field(engine, city, body, field):
    _, auth = city
    answer = TestClient(create_app(engine)).post("/api/v1/observations", json=body, headers=auth)
    assert answer.status_code == 422
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert field in json.dumps(answer.json())


def test_uploads_need_a_device_or_operator_token(engine, city):
    streams, _ = city
    with engine.begin() as conn:
        _, citizen = access.create_token(conn, "someone", "citizen")
    client = TestClient(create_app(engine))
    body = [obs(streams["Hangang Bridge water level"], 0, 8.0)]
    assert client.post("/api/v1/observations", json=body).status_code == 401
    assert client.post("/api/v1/observations", json=body,
                       headers={"Authorization": f"Bearer {citizen}"}).status_code == 403


def test_unsupported_media_type_and_broken_array_are_refused(engine, city):
    _, auth = city
    client = TestClient(create_app(engine))
    xml = client.post("/api/v1/observations", content="<obs/>", headers=auth | {"Content-Type": "application/xml"})
    assert xml.status_code in (415, 422) and xml.headers["content-type"].startswith("application/problem+json")
    broken = client.post("/api/v1/observations", content='[{"datastream_id": 1, "res',
                         headers=auth | {"Content-Type": "application/json"})
    assert broken.status_code == 422 and "JSON array" in broken.json()["detail"]


def test_live_state_shows_the_newest_reading_and_filters(engine, city):
    streams, auth = city
    client = TestClient(create_app(engine))
    client.post("/api/v1/observations", headers=auth, json=[
        obs(streams["Hangang Bridge water level"], 0, 8.0), obs(streams["Hangang Bridge water level"], 10, 8.4),
        obs(streams["Cheongdam Bridge water level"], 0, 9.0), obs(streams["Hangang Bridge discharge"], 0, 9000.0)])
    levels = client.get("/api/v1/state", params={"property": "water_level"}).json()
    assert {(s["name"], s["result"]) for s in levels} == {
        ("Hangang Bridge water level", 8.4), ("Cheongdam Bridge water level", 9.0)}
    dongjak = client.get("/api/v1/state", params={"area": "11590"}).json()  # Hangang Bridge gauge's district
    assert {s["property"] for s in dongjak} == {"water_level", "discharge"}
    west = client.get("/api/v1/state", params={"bbox": "126.9,37.5,127.0,37.6"}).json()
    assert {s["name"] for s in west} == {"Hangang Bridge water level", "Hangang Bridge discharge"}
    assert client.get("/api/v1/state", params={"bbox": "1,2"}).status_code == 422


def test_sse_stream_carries_each_stored_observation(sqlite_engine):
    load_city(sqlite_engine, "seoul")
    with sqlite_engine.begin() as conn:
        _, token = access.create_token(conn, "gw", "device")
        level = next(p["id"] for p in sensing.stream_profiles(conn) if p["name"] == "Jamsu Bridge water level")
    def three_observations(seen):
        return sum(1 for e, _ in seen if e == "observation") == 3

    with LiveServer(create_app(sqlite_engine)) as server, SseListener(
            f"{server.url}/api/v1/stream?types=observation.>", three_observations, timeout=30) as listener:
        httpx.post(f"{server.url}/api/v1/observations", headers={"Authorization": f"Bearer {token}"},
                   json=[obs(level, 10 * i, 5.0 + i / 10) for i in range(3)])
    seen = [d for e, d in listener.seen if e == "observation"]
    assert [o["result"] for o in seen] == [5.0, 5.1, 5.2]
    assert {o["datastream_id"] for o in seen} == {level} and seen[0]["quality"] == "good"


def test_the_anonymous_stream_carries_the_public_picture_only(sqlite_engine):
    """Incidents can name people and places: they go to staff tokens only; warnings go to everyone."""
    import httpx
    from conftest import LiveServer, SseListener
    from test_api_support import seed

    from haechi.api.app import create_app

    tokens, _ = seed(sqlite_engine)
    staff = {"Authorization": f"Bearer {tokens['operator']}"}
    with LiveServer(create_app(sqlite_engine)) as server:
        def listen(query):
            return SseListener(f"{server.url}/api/v1/stream?types=incident.>,warning.>{query}",
                               lambda seen: any(e == "warning.acknowledged" for e, _ in seen), timeout=30)

        with (listen("") as anonymous, listen(f"&token={tokens['citizen']}") as resident,
              listen(f"&token={tokens['operator']}") as operator,
              listen(f"&token={tokens['district_official']}") as gangnam_office):  # an official of 11680
            opened = httpx.post(f"{server.url}/api/v1/incidents", headers=staff, json={
                "kind": "fire", "title": "종로 상가 화재", "lon": 126.985, "lat": 37.57})  # in Jongno, not Gangnam
            assert opened.status_code == 201, opened.text
            issued = httpx.post(f"{server.url}/api/v1/alerts", headers=staff,
                                json={"hazard": "heavy_rain", "level": "advisory", "area": "11680"})
            assert issued.status_code == 201, issued.text
            [warning] = httpx.get(f"{server.url}/api/v1/warnings").json()
            seen = httpx.post(f"{server.url}/api/v1/warnings/{warning['id']}/acknowledge", headers=staff)
            assert seen.status_code == 200, seen.text  # the listeners stop on this event
    assert [e for e, _ in anonymous.seen] == ["warning.changed", "warning.acknowledged"]
    assert [e for e, _ in resident.seen] == ["warning.changed", "warning.acknowledged"]
    assert [e for e, _ in operator.seen] == ["incident.changed", "warning.changed", "warning.acknowledged"]
    assert [e for e, _ in gangnam_office.seen] == [  # not another district's incident
        "warning.changed", "warning.acknowledged"]
