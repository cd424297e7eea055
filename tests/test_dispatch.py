"""119 units and dispatch: the unit lifecycle, ranking by travel time, arrivals and the golden time."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from test_api_support import MAX_BODY_BYTES, World, assert_problem, seed

from haechi.api import create_app
from haechi.core.clock import utcnow
from haechi.core.errors import Conflict, InvalidInput
from haechi.core.settings import Settings
from haechi.model.geo import haversine_m
from haechi.response import dispatch, incidents, repository, travel
from haechi.response.config import golden_time_s, settings
from haechi.store import places
from haechi.store.incidents import events_of, get_incident

STATION = {"kind": "fire_station", "ref": "F-T", "name_ko": "시험소방서", "lon": 127.048, "lat": 37.506}
SCENE = (127.036, 37.500)
STATUSES = ("available", "dispatched", "on_scene", "returning", "out_of_service")


def world_with(engine, **settings) -> World:
    tokens, ids = seed(engine)
    app = create_app(engine, Settings(max_body_bytes=MAX_BODY_BYTES, **settings))
    return World(engine, TestClient(app), tokens, ids)


@pytest.fixture
def world(engine, tmp_path):
    # No road graph, whatever lies in the working directory: the estimate is what these tests check.
    return world_with(engine, road_graph=str(tmp_path / "no-roads.npz"))


def station_id(world) -> int:
    with world.engine.begin() as conn:
        return next(p["id"] for p in places.list_places(conn, "fire_station"))


def post(world, path, body, role="operator"):
    return world.client.post(path, json=body, headers=world.auth(role))


def add_units(world, positions):
    made = []
    for i, (lon, lat) in enumerate(positions):
        response = post(world, "/api/v1/units", {"call_sign": f"강남-{i}", "unit_type": "pumper",
                                                 "station_place_id": station_id(world), "lon": lon, "lat": lat})
        assert response.status_code == 201, response.text
        made.append(response.json())
    return made


def fire(world):
    body = {"kind": "fire", "lon": SCENE[0], "lat": SCENE[1], "title": "역삼동 화재"}
    return post(world, "/api/v1/incidents", body).json()


# ── pure ranking ────────────────────────────────────────────────────────────────────────


def test_straight_line_estimate_uses_the_published_factors():
    figures = settings()["travel_estimate"]
    origin, destination = (127.0, 37.5), (127.01, 37.5)
    expected = haversine_m(*origin, *destination) * figures["detour_factor"] / (figures["speed_kmh"] / 3.6)
    assert travel.straight_line_s(origin, destination) == pytest.approx(expected)
    assert "Boeing (2019)" in figures["source"]


units_strategy = st.lists(
    st.fixed_dictionaries({
        "status": st.sampled_from(STATUSES),
        "lon": st.floats(126.8, 127.2), "lat": st.floats(37.4, 37.7),
    }), max_size=30)


@given(units_strategy)
def test_a_busy_unit_is_never_recommended(units):
    units = [{**u, "id": i, "call_sign": f"u{i}"} for i, u in enumerate(units)]
    ranked = travel.rank_units(units, SCENE, travel.estimate)
    assert {u["id"] for u in ranked["units"]} == {u["id"] for u in units if u["status"] == "available"}
    times = [u["travel_s"] for u in ranked["units"]]
    assert times == sorted(times)
    assert ranked["method"] == travel.STRAIGHT_LINE


def test_ranking_keeps_units_the_road_graph_cannot_reach_last():
    units = [{"id": i, "call_sign": f"u{i}", "status": "available", "lon": 127.0 + i / 100, "lat": 37.5}
             for i in range(3)]
    ranked = travel.rank_units(units, SCENE, lambda origins, _: ([300.0, None, 120.0], travel.ROAD_GRAPH))
    assert [(u["id"], u["travel_s"]) for u in ranked["units"]] == [(2, 120.0), (0, 300.0), (1, None)]
    assert ranked["method"] == travel.ROAD_GRAPH


def test_golden_time_for_fire_is_seven_minutes_from_the_data_file():
    assert golden_time_s("fire") == 7 * 60
    assert golden_time_s("missing_person") is None
    assert "소방청" in settings()["golden_time"]["source"]


# ── over the API, on both databases ─────────────────────────────────────────────────────


def test_recommendations_rank_available_units_and_never_busy_ones(world):
    near, far, busy = add_units(world, [(127.040, 37.501), (127.080, 37.520), (127.037, 37.500)])
    incident = fire(world)
    other = post(world, "/api/v1/incidents", {"kind": "fire", "lon": 127.05, "lat": 37.51, "title": "다른 화재"}).json()
    assert post(world, f"/api/v1/incidents/{other['id']}/dispatch", {"unit_ids": [busy["id"]]}).status_code == 201
    got = world.client.get(f"/api/v1/incidents/{incident['id']}/recommendations", headers=world.auth("operator")).json()
    assert [u["id"] for u in got["units"]] == [near["id"], far["id"]]  # the closest one is busy elsewhere
    assert got["method"] == "straight_line" and "Boeing" in got["method_source"]
    assert got["golden_time_s"] == 420
    assert got["units"][0]["within_golden_time"] is True
    assert got["units"][0]["travel_s"] < got["units"][1]["travel_s"]


def test_dispatch_and_arrival_record_the_response_time_and_golden_time(world):
    fast, slow = add_units(world, [(127.040, 37.501), (127.080, 37.520)])
    incident = fire(world)
    made = post(world, f"/api/v1/incidents/{incident['id']}/dispatch", {"unit_ids": [fast["id"], slow["id"]]})
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["incident"]["status"] == "responding"  # dispatching starts the response
    first, second = body["dispatches"]
    assert first["estimate_method"] == "straight_line" and first["estimate_s"] > 0
    sent = first["dispatched_at"]
    # A dispatched unit cannot be sent again.
    problem = assert_problem(post(world, f"/api/v1/incidents/{incident['id']}/dispatch", {"unit_ids": [fast["id"]]}),
                             409, "body.unit_ids")
    assert "'dispatched' to 'dispatched'" in problem["detail"]
    # The calls went out ten minutes ago (arrivals cannot be in the future): move the record back.
    from sqlalchemy import select, update

    from haechi.store.schema import dispatches
    with world.engine.begin() as conn:
        for row in conn.execute(select(dispatches.c.id, dispatches.c.dispatched_at)).all():
            conn.execute(update(dispatches).where(dispatches.c.id == row.id)
                         .values(dispatched_at=row.dispatched_at - timedelta(minutes=10)))
    sent = _plus(sent, minutes=-10)
    on_time = _plus(sent, minutes=5)
    late = _plus(sent, minutes=9)
    future = _plus(sent, minutes=30)
    assert_problem(post(world, f"/api/v1/incidents/{incident['id']}/dispatches/{first['id']}/arrival",
                        {"arrived_at": future}), 422, "body.arrived_at")
    arrival = post(world, f"/api/v1/incidents/{incident['id']}/dispatches/{first['id']}/arrival",
                   {"arrived_at": on_time})
    assert arrival.status_code == 200, arrival.text
    assert (arrival.json()["response_s"], arrival.json()["met_golden_time"]) == (300.0, True)
    late_arrival = post(world, f"/api/v1/incidents/{incident['id']}/dispatches/{second['id']}/arrival",
                        {"arrived_at": late}).json()
    assert (late_arrival["response_s"], late_arrival["met_golden_time"]) == (540.0, False)
    # Arriving twice is refused by the unit lifecycle.
    assert_problem(post(world, f"/api/v1/incidents/{incident['id']}/dispatches/{first['id']}/arrival", {}), 409)
    report = world.client.get("/api/v1/response-times", headers=world.auth("operator")).json()
    assert (report["arrivals"], report["within_golden_time"], report["judged"]) == (2, 1, 2)
    assert report["median_s"] == 420.0 and report["within_golden_time_share"] == 0.5
    history = world.client.get(f"/api/v1/incidents/{incident['id']}/history", headers=world.auth("operator")).json()
    assert [e["action"] for e in history] == ["opened", "dispatch", "dispatch", "status", "arrival", "arrival"]
    units = {u["id"]: u for u in world.client.get("/api/v1/units", headers=world.auth("operator")).json()}
    assert units[fast["id"]]["status"] == "on_scene"


def test_unit_lifecycle_refuses_illegal_moves_and_frees_the_unit(world):
    [unit] = add_units(world, [(127.040, 37.501)])
    path = f"/api/v1/units/{unit['id']}/status"
    problem = assert_problem(post(world, path, {"status": "on_scene"}), 409, "body.status")
    assert "allowed next statuses: dispatched, out_of_service" in problem["detail"]
    incident = fire(world)
    post(world, f"/api/v1/incidents/{incident['id']}/dispatch", {"unit_ids": [unit["id"]]})
    assert post(world, path, {"status": "on_scene"}).json()["status"] == "on_scene"
    back = post(world, path, {"status": "returning", "lon": 127.045, "lat": 37.503}).json()
    assert (back["status"], back["incident_id"], back["lon"]) == ("returning", None, 127.045)
    assert post(world, path, {"status": "available"}).json()["status"] == "available"
    again = world.client.get(f"/api/v1/incidents/{incident['id']}/recommendations", headers=world.auth("operator"))
    assert [u["id"] for u in again.json()["units"]] == [unit["id"]]
    assert world.client.get("/api/v1/response-times", headers=world.auth("operator")).json()["arrivals"] == 1


def test_units_need_a_fire_station(world):
    with world.engine.begin() as conn:
        shelter = places.list_places(conn, "shelter")[0]["id"]
    assert_problem(post(world, "/api/v1/units", {"call_sign": "x", "unit_type": "pumper", "station_place_id": shelter}),
                   422, "body.station_place_id")
    assert_problem(post(world, "/api/v1/units", {"call_sign": "x", "unit_type": "boat",
                                                 "station_place_id": station_id(world)}), 422, "body.unit_type")


def test_dispatch_in_python_moves_an_open_incident_once(engine):
    with engine.begin() as conn:
        places.save_places(conn, [STATION])
        [station] = places.list_places(conn, "fire_station")
        unit = dispatch.add_unit(conn, call_sign="u1", unit_type="rescue", station_place_id=station["id"])
        incident = incidents.open_incident(conn, kind="collapse", lon=127.04, lat=37.5, title="붕괴", actor="t")
        now = utcnow()
        [made] = dispatch.dispatch(conn, incident["id"], [unit["id"]], travel.estimate, actor="t", now=now)
        assert unit["lon"] == station["lon"]  # no own position: the station's
        assert made["golden_time_s"] == 420 and made["estimate_s"] > 0
        assert get_incident(conn, incident["id"])["status"] == "responding"
        with pytest.raises(Conflict):  # already out
            dispatch.dispatch(conn, incident["id"], [unit["id"]], travel.estimate, actor="t")
        with pytest.raises(InvalidInput):  # an arrival before its dispatch is a clock error
            dispatch.arrive(conn, incident["id"], made["id"], actor="t", at=now - timedelta(seconds=1))
        history = [e["action"] for e in events_of(conn, incident["id"])]
        assert history == ["opened", "dispatch", "status"]


def _plus(iso: str, **delta) -> str:
    return (datetime.fromisoformat(iso) + timedelta(**delta)).isoformat()


def test_recommendations_use_the_road_graph_when_one_is_loaded(engine, db_url, tmp_path):
    from haechi.roads import service
    from haechi.roads.synthetic import grid_graph

    path = service.build_cache(grid_graph(25, box=(127.02, 37.48, 127.07, 37.52)), tmp_path / "roads.npz")
    settings = {"road_graph": str(path), "database_url": db_url}
    world = world_with(engine, **settings)
    units = add_units(world, [(127.040, 37.501), (127.065, 37.515)])
    incident = fire(world)
    got = world.client.get(f"/api/v1/incidents/{incident['id']}/recommendations", headers=world.auth("operator")).json()
    assert got["method"] == "road_graph"
    by_road = service.travel_times(Settings(**settings), [(u["lon"], u["lat"]) for u in units], SCENE)
    assert [u["travel_s"] for u in got["units"]] == sorted(round(t, 1) for t in by_road)
    sent = post(world, f"/api/v1/incidents/{incident['id']}/dispatch", {"unit_ids": [units[0]["id"]]}).json()
    assert sent["dispatches"][0]["estimate_method"] == "road_graph"


def test_a_unit_sent_by_several_operators_at_once_goes_once(engine):
    from concurrent.futures import ThreadPoolExecutor

    from sqlalchemy.exc import OperationalError

    with engine.begin() as conn:
        places.save_places(conn, [STATION])
        [station] = places.list_places(conn, "fire_station")
        unit = dispatch.add_unit(conn, call_sign="u1", unit_type="pumper", station_place_id=station["id"])
        fires = [incidents.open_incident(conn, kind="fire", lon=127.04, lat=37.5 + i / 1000, title=f"화재 {i}",
                                         actor="t")
                 for i in range(6)]

    def send(incident):
        try:
            with engine.begin() as conn:
                dispatch.dispatch(conn, incident["id"], [unit["id"]], travel.estimate, actor="t")
            return "sent"
        except Conflict:
            return "refused"
        except OperationalError:  # SQLite: the database was locked by the winner
            return "refused"

    with ThreadPoolExecutor(6) as pool:
        outcomes = list(pool.map(send, fires))
    assert outcomes.count("sent") == 1
    with engine.begin() as conn:
        assert len(repository.dispatches_of(conn, unit_id=unit["id"])) == 1
        assert repository.get_unit(conn, unit["id"])["status"] == "dispatched"


def test_closing_an_incident_returns_its_units_and_releases_its_drones(world):
    sent_on, still_there, idle, elsewhere = add_units(world, [(127.040, 37.501), (127.038, 37.500),
                                                              (127.050, 37.510), (127.060, 37.520)])
    incident, other = fire(world), fire(world)
    assert post(world, f"/api/v1/incidents/{incident['id']}/dispatch",
                {"unit_ids": [sent_on["id"], still_there["id"]]}).status_code == 201
    assert post(world, f"/api/v1/incidents/{other['id']}/dispatch", {"unit_ids": [elsewhere["id"]]}).status_code == 201
    [_, arrived] = world.client.get(f"/api/v1/incidents/{incident['id']}",
                                    headers=world.auth("operator")).json()["dispatches"]
    assert post(world, f"/api/v1/incidents/{incident['id']}/dispatches/{arrived['id']}/arrival", {}).status_code == 200
    drones = [post(world, "/api/v1/drones", {"call_sign": f"드론-{i}", "base_place_id": station_id(world)}).json()
              for i in range(2)]
    for drone, target in zip(drones, (incident, other), strict=True):
        assert post(world, f"/api/v1/drones/{drone['id']}/assign", {"incident_id": target["id"]}).status_code == 200
    changed = []

    async def collect(event):
        changed.append((event.type, event.data["call_sign"], event.data.get("status")))

    world.client.app.state.bus.subscribe("unit.changed", collect)
    world.client.app.state.bus.subscribe("drone.changed", collect)

    closed = post(world, f"/api/v1/incidents/{incident['id']}/status", {"status": "closed", "note": "진화 완료"})

    assert closed.status_code == 200, closed.text
    units = {u["id"]: u for u in world.client.get("/api/v1/units", headers=world.auth("operator")).json()}
    assert [units[u["id"]]["status"] for u in (sent_on, still_there, idle, elsewhere)] == [
        "available", "available", "available", "dispatched"]  # only the closed incident's units come back
    assert all(world.client.get(f"/api/v1/units/{u['id']}",
                                headers=world.auth("operator")).json()["incident_id"] is None
               for u in (sent_on, still_there))
    assert all(d["cleared_at"] for d in closed.json()["dispatches"])
    now_drones = {d["id"]: d for d in world.client.get("/api/v1/drones", headers=world.auth("operator")).json()}
    assert [now_drones[d["id"]]["incident_id"] for d in drones] == [None, other["id"]]
    # Each step is in the history, as an operator moving the unit by hand would leave it.
    steps = [(e["action"], e["from_value"], e["to_value"], e["note"]) for e in closed.json()["history"]]
    assert steps[steps.index(("status", "responding", "closed", "진화 완료")) + 1:] == [
        ("unit", "dispatched", "returning", "강남-0 returning (incident closed)"),
        ("unit", "returning", "available", "강남-0 available (incident closed)"),
        ("unit", "on_scene", "returning", "강남-1 returning (incident closed)"),
        ("unit", "returning", "available", "강남-1 available (incident closed)"),
        ("drone", None, "released", "drone 드론-0 released")]
    # The live picture hears of it, and the units are offered for the next incident.
    assert changed == [("unit.changed", "강남-0", "available"), ("unit.changed", "강남-1", "available"),
                       ("drone.changed", "드론-0", None)]
    offered = world.client.get(f"/api/v1/incidents/{other['id']}/recommendations", headers=world.auth("operator"))
    assert {u["id"] for u in offered.json()["units"]} == {sent_on["id"], still_there["id"], idle["id"]}
