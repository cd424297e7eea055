"""Evacuation to the nearest shelter with room, around hazard areas, spreading as shelters fill."""

from __future__ import annotations

import numpy as np
import pytest
from shapely.geometry import Point, box
from test_api_support import assert_problem
from test_roads_api import Client, road_file, square  # noqa: F401 - the session's cached grid

from haechi.roads import evacuation as evac
from haechi.roads import hazards
from haechi.roads.router import Router
from haechi.roads.service import Network
from haechi.roads.synthetic import grid_graph

YEOKSAM = "127.036,37.500"  # beside shelter S-GN-1 (capacity 50); S-GN-2 (900) is 2 km east


@pytest.fixture
def api(engine, road_file):  # noqa: F811
    return Client(engine, road_file)


def test_evacuation_goes_to_the_nearest_shelter_with_room(api):
    response = api.get("/api/v1/evacuation", at="127.030,37.497")
    assert response.status_code == 200, response.text
    props = response.json()["properties"]
    assert props["shelter"]["name_ko"] == "역삼 무더위쉼터" and props["shelter"]["room"] == 50
    assert props["seconds"] > 0 and props["synthetic_graph"] is True


def test_evacuees_spread_to_the_next_shelter_when_one_fills(api):
    sent = api.post("/api/v1/evacuation/assignments", {"lon": 127.036, "lat": 37.5, "people": 60}, role="operator")
    assert sent.status_code == 201, sent.text
    legs = [(f["properties"]["shelter"]["name_ko"], f["properties"]["people"]) for f in sent.json()["features"]]
    assert legs == [("역삼 무더위쉼터", 50), ("대치 대피소", 10)]
    after = api.get("/api/v1/evacuation", at=YEOKSAM).json()["properties"]["shelter"]
    assert (after["name_ko"], after["evacuees"], after["room"]) == ("대치 대피소", 10, 890)
    assert api.delete("/api/v1/evacuation/assignments").status_code == 204
    assert api.get("/api/v1/evacuation", at=YEOKSAM).json()["properties"]["shelter"]["name_ko"] == "역삼 무더위쉼터"


def test_more_evacuees_than_room_are_reported_unplaced_not_lost(api):
    sent = api.post("/api/v1/evacuation/assignments", {"lon": 127.036, "lat": 37.5, "people": 3000}).json()
    assert sum(f["properties"]["people"] for f in sent["features"]) == 50 + 900 + 1200
    assert sent["unplaced"] == 850
    assert_problem(api.get("/api/v1/evacuation", at=YEOKSAM), 404)  # every shelter is full


def test_shelters_inside_a_hazard_area_are_not_used(api):
    around_yeoksam = square(127.030, 37.495, 127.042, 37.505)
    assert api.post("/api/v1/roads/closures", {"reason": "붕괴 위험", "geometry": around_yeoksam}).status_code == 201
    props = api.get("/api/v1/evacuation", at="127.020,37.480").json()["properties"]
    assert props["shelter"]["name_ko"] != "역삼 무더위쉼터"
    assert props["leaves_hazard_area"] is False  # starting outside, the route never enters the area
    inside = api.get("/api/v1/evacuation", at=YEOKSAM).json()["properties"]
    assert inside["leaves_hazard_area"] is True and inside["shelter"]["name_ko"] != "역삼 무더위쉼터"


def test_bad_assignments_are_refused_and_kept(api):
    assert_problem(api.post("/api/v1/evacuation/assignments", {"lon": 127.0, "lat": 37.5, "people": 0}),
                   422, "body.people")
    assert_problem(api.post("/api/v1/evacuation/assignments", {"lon": 150.0, "lat": 10.0, "people": 5}), 422, "at")
    assert_problem(api.post("/api/v1/evacuation/assignments", {"lon": 127.0, "lat": 37.5, "people": 5},
                            role="citizen"), 403)
    assert [d.source for d in api.dead_letters()] == ["http:/api/v1/evacuation/assignments"] * 2


def test_evacuation_routes_from_outside_never_cross_a_hazard_area_when_a_way_round_exists():
    graph = grid_graph(40)
    zone = box(126.95, 37.50, 127.00, 37.62)
    net = Network(graph, Router(graph).landmarks, [hazards.Zone("closure", 1, "flood", "closed", 1.0, zone)])
    shelters = [evac.Shelter(1, "동쪽", None, 127.15, 37.56, 100, 0),
                evac.Shelter(2, "서쪽", None, 126.80, 37.56, 100, 0)]
    trees = evac.evacuation_trees(net, shelters)
    inside = np.zeros(graph.node_count, bool)
    inside[np.unique(np.concatenate([graph.tail[net.inside], graph.head[net.inside]]))] = True
    rng = np.random.default_rng(3)
    for node in rng.choice(np.flatnonzero(~inside), 200, replace=False):
        path = evac.path_from(trees, int(node))
        assert not inside[path].any()
        nearest = min(shelters, key=lambda s: Point(s.lon, s.lat).distance(Point(graph.lon[node], graph.lat[node])))
        if abs(graph.lon[node] - nearest.lon) < 0.1:  # well inside one side: its own side's shelter
            assert trees.shelters[trees.owner[node]] is nearest


def open_warning(api, hazard):
    from haechi.core.clock import utcnow
    from haechi.store import warnings as warning_store

    with api.engine.begin() as conn:
        return warning_store.open_warning(conn, {
            "hazard": hazard, "area_key": "district:11680", "area_code": "11680", "level": "warning",
            "crisis_level": "alert", "issued_at": utcnow(), "updated_at": utcnow()})


def placed(plan):
    by_shelter = {}
    for f in plan["features"]:
        if f["properties"]["shelter"]:
            name = f["properties"]["shelter"]["name_ko"]
            by_shelter[name] = by_shelter.get(name, 0) + f["properties"]["people"]
    return by_shelter


def test_a_warned_areas_blocks_fill_the_nearest_shelters_then_spread(api):
    warning = open_warning(api, "heat_wave")  # no road effect: Gangnam's own shelters stay usable
    plan = api.get("/api/v1/evacuation/plan", role="operator", warning=warning).json()
    assert plan["blocks"] > 10 and plan["people"] == pytest.approx(536_107, abs=plan["blocks"])
    assert placed(plan) == {"역삼 무더위쉼터": 50, "대치 대피소": 900, "종로 대피소": 1200}  # every one filled
    assert plan["unplaced"] == plan["people"] - 2150
    first = next(f for f in plan["features"] if f["properties"]["shelter"])
    assert first["properties"]["shelter"]["name_ko"] != "종로 대피소"  # the nearest blocks go to nearby shelters
    with api.engine.connect() as conn:  # a preview: no load recorded
        from haechi.store.schema import shelter_loads
        assert conn.execute(shelter_loads.select()).all() == []


def test_a_collapse_warning_plan_uses_only_shelters_outside_the_area(api):
    warning = open_warning(api, "structure")
    plan = api.get("/api/v1/evacuation/plan", role="operator", warning=warning).json()
    assert placed(plan) == {"종로 대피소": 1200}
    assert api.get("/api/v1/evacuation/plan", role="citizen", warning=warning).status_code == 403
    assert_problem(api.get("/api/v1/evacuation/plan", role="operator", warning=9999), 404)


@pytest.mark.postgres
def test_two_assignments_at_once_for_a_shelters_last_place_give_it_to_exactly_one(postgres_url, monkeypatch):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from conftest import _empty_postgres

    from haechi.store import places
    from haechi.store.db import make_engine
    from haechi.store.schema import shelter_loads

    _empty_postgres(postgres_url)
    engine = make_engine(postgres_url)
    with engine.begin() as conn:
        places.save_places(conn, [
            {"kind": "shelter", "ref": "near", "name_ko": "가까운 쉼터", "lon": 127.10, "lat": 37.56,
             "shelter_kind": "cooling", "capacity": 1},
            {"kind": "shelter", "ref": "far", "name_ko": "먼 쉼터", "lon": 126.85, "lat": 37.56,
             "shelter_kind": "cooling", "capacity": 10}])
        ids = {p["ref"]: p["id"] for p in places.list_places(conn, "shelter")}
    graph = grid_graph(40)
    net = Network(graph, Router(graph).landmarks)
    # Both assignments read the loads before either writes: the moment a read-then-write loses a place.
    both_read = threading.Barrier(2, timeout=30)
    read = evac.load_shelters

    def read_together(conn):
        shelters = read(conn)
        both_read.wait()
        return shelters

    monkeypatch.setattr(evac, "load_shelters", read_together)

    def assign_one(_):
        with engine.begin() as conn:
            [leg] = evac.assign(conn, net, (127.09, 37.56), 1)
            return leg["shelter"].place_id

    with ThreadPoolExecutor(2) as pool:
        went = sorted(pool.map(assign_one, range(2)))
    with engine.connect() as conn:
        loads = dict(conn.execute(shelter_loads.select().with_only_columns(
            shelter_loads.c.place_id, shelter_loads.c.evacuees)).all())
    engine.dispose()
    assert went == sorted([ids["near"], ids["far"]])  # the last near place to one, the other goes on
    assert loads == {ids["near"]: 1, ids["far"]: 1}  # never 2 people in a shelter for 1
