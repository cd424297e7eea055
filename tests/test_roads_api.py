"""The roads API over a real DB (SQLite and PostgreSQL): routes, closures, warnings, the no-graph case.

The road graph is the synthetic grid over Seoul (a real Seoul extract is not in ../shared/data yet);
the test city (tests/test_api_support.py) puts Jongno and Gangnam boxes on it.
"""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from test_api_support import assert_problem, seed

from haechi.api import create_app
from haechi.core.clock import utcnow
from haechi.core.settings import Settings
from haechi.roads.service import build_cache
from haechi.roads.synthetic import grid_graph
from haechi.store import warnings as warning_store
from haechi.store.schema import dead_letters

JONGNO, GANGNAM = "126.985,37.600", "127.050,37.500"
GANGNAM_EAST = (127.03, 37.47, 127.08, 37.52)


@pytest.fixture(scope="session")
def road_file(tmp_path_factory):
    """The synthetic grid (100 × 100 over Seoul's box, ~350 m blocks) cached once for every test."""
    return build_cache(grid_graph(100), tmp_path_factory.mktemp("roads") / "grid.npz")


class Client:
    def __init__(self, engine, road_graph):
        self.engine = engine
        self.tokens, _ = seed(engine)
        self.http = TestClient(create_app(engine, Settings(road_graph=str(road_graph))))

    def get(self, path, role="citizen", **params):
        return self.http.get(path, params=params, headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def post(self, path, body, role="operator"):
        return self.http.post(path, json=body, headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def delete(self, path, role="operator"):
        return self.http.delete(path, headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def route(self, a=JONGNO, b=GANGNAM):
        return self.get("/api/v1/routes", **{"from": a, "to": b})

    def dead_letters(self):
        with self.engine.connect() as conn:
            return conn.execute(select(dead_letters)).all()


@pytest.fixture
def api(engine, road_file):
    return Client(engine, road_file)


def square(w, s, e, n):
    return {"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]}


def test_without_a_road_graph_every_endpoint_says_which_command_loads_one(engine, tmp_path):
    api = Client(engine, tmp_path / "missing.npz")
    for response in (api.route(), api.get("/api/v1/evacuation", at=GANGNAM),
                     api.get("/api/v1/coverage", role="operator"), api.get("/api/v1/roads")):
        problem = assert_problem(response, 409)  # the server is well: a set-up step is missing, and named
        assert "haechi roads import FILE" in problem["detail"] and "haechi city load seoul" in problem["detail"]


def test_route_is_a_geojson_line_from_origin_to_destination_labelled_synthetic(api):
    response = api.route()
    assert response.status_code == 200, response.text
    feature = response.json()
    coords = feature["geometry"]["coordinates"]
    assert feature["geometry"]["type"] == "LineString"
    assert abs(coords[0][0] - 126.985) < 0.005 and abs(coords[-1][1] - 37.500) < 0.005
    props = feature["properties"]
    assert props["synthetic_graph"] is True and "synthetic" in props["graph_source"]
    assert 600 < props["seconds"] < 3600 and props["metres"] > 12_000  # ~13 km across town in the city


@pytest.mark.parametrize(("params", "field"), [
    ({"from": "abc", "to": GANGNAM}, "query.from"),
    ({"from": "127.0,95.0", "to": GANGNAM}, "query.from"),
    ({"from": JONGNO, "to": "140.0,30.0"}, "to"),  # far off the road graph
    ({"from": JONGNO}, "query.to"),
])
def test_bad_positions_are_refused_naming_the_field(api, params, field):
    response = api.get("/api/v1/routes", **params)
    assert_problem(response, 422, field)


def test_a_closure_changes_the_route_until_it_is_lifted(api):
    before = api.route().json()["properties"]["seconds"]
    # a band across the whole city between the two: no way round, so no route at all
    closure = api.post("/api/v1/roads/closures",
                       {"reason": "싱크홀 통제", "geometry": square(126.7, 37.54, 127.2, 37.56)})
    assert closure.status_code == 201, closure.text
    assert_problem(api.route(), 404)
    assert api.get("/api/v1/roads/hazards").json()["features"][0]["properties"]["label"] == "싱크홀 통제"
    assert api.delete(f"/api/v1/roads/closures/{closure.json()['id']}").status_code == 204
    assert api.route().json()["properties"]["seconds"] == pytest.approx(before)
    slowed = api.post("/api/v1/roads/closures", {"reason": "집회", "effect": "slowed", "speed_factor": 0.5,
                                                 "geometry": square(126.7, 37.3, 127.3, 37.8)})
    assert slowed.status_code == 201
    assert api.route().json()["properties"]["seconds"] == pytest.approx(2 * before)


def test_only_operators_close_roads_and_bad_closures_are_kept_as_dead_letters(api):
    assert_problem(api.post("/api/v1/roads/closures", {"reason": "x", "geometry": square(127, 37.5, 127.1, 37.6)},
                            role="citizen"), 403)
    assert_problem(api.post("/api/v1/roads/closures", {"reason": "x", "geometry": {"type": "Point",
                                                                                    "coordinates": [127, 37.5]}}),
                   422, "geometry")
    assert_problem(api.post("/api/v1/roads/closures", {"reason": "x", "effect": "slowed",
                                                       "geometry": square(127, 37.5, 127.1, 37.6)}),
                   422, "speed_factor")
    assert_problem(api.post("/api/v1/roads/closures", {"reason": "", "geometry": square(127, 37.5, 127.1, 37.6)}),
                   422, "body.reason")
    kept = api.dead_letters()
    assert len(kept) == 3 and all(k.source == "http:/api/v1/roads/closures" for k in kept)
    assert "geometry" in kept[0].reason and "speed_factor" in kept[1].reason and "reason" in kept[2].reason


def test_an_active_collapse_warning_closes_its_area_and_cancelling_reopens_it(api):
    assert api.route().status_code == 200
    with api.engine.begin() as conn:
        warning_id = warning_store.open_warning(conn, {
            "hazard": "structure", "area_key": "district:11680", "area_code": "11680", "level": "serious",
            "crisis_level": "serious", "issued_at": utcnow(), "updated_at": utcnow()})
    assert_problem(api.route(), 404)  # the destination lies inside the closed district
    assert api.get("/api/v1/roads").json()["hazard_areas_in_force"] == 1
    with api.engine.begin() as conn:
        warning_store.change_warning(conn, warning_id, {"status": "cancelled", "cancelled_at": utcnow(),
                                                        "updated_at": utcnow()})
    assert api.route().status_code == 200


def test_exercise_warnings_and_hazards_without_road_effects_close_nothing(api):
    before = api.route().json()["properties"]["seconds"]
    with api.engine.begin() as conn:
        for hazard, exercise in (("structure", True), ("heat_wave", False)):
            warning_store.open_warning(conn, {
                "hazard": hazard, "area_key": "district:11680", "area_code": "11680", "level": "warning",
                "crisis_level": "alert", "exercise": exercise, "issued_at": utcnow(), "updated_at": utcnow()})
    assert api.route().json()["properties"]["seconds"] == pytest.approx(before)


def test_a_citizen_without_a_token_gets_the_way_to_a_shelter(api):
    """The way out is public, like the shelters: nobody in danger should need a token for it."""
    response = api.http.get("/api/v1/evacuation", params={"at": GANGNAM})
    assert response.status_code == 200, response.text
    assert response.json()["properties"]["shelter"]["name_ko"]
    assert api.http.get("/api/v1/routes", params={"from": JONGNO, "to": GANGNAM}).status_code == 401
