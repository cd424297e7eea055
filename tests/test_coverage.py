"""Golden-time coverage: stations' isochrones, district shares, the uncovered layer, closures."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.sparse.csgraph import dijkstra
from shapely.geometry import Point, shape
from test_roads_api import Client, road_file, square  # noqa: F401 - the session's cached grid

from haechi.roads import coverage
from haechi.roads.router import Router
from haechi.roads.service import Network
from haechi.roads.synthetic import grid_graph

STATION = (127.048, 37.506)  # F-GN, 강남소방서 in the test city


@pytest.fixture
def api(engine, road_file):  # noqa: F811
    return Client(engine, road_file)


def test_golden_time_is_the_fire_agencys_seven_minutes_read_from_the_response_data():
    seconds, source = coverage.golden_time()
    assert seconds == 420 and "소방청" in source


def test_coverage_reports_isochrones_uncovered_places_and_district_shares(api):
    response = api.get("/api/v1/coverage", role="operator")
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["golden_time_s"] == 420 and report["stations"] == 1 and report["synthetic_graph"] is True
    layers = {f["properties"]["layer"]: f for f in report["features"]}
    iso = layers["isochrone"]
    assert iso["properties"]["name_ko"] == "강남소방서" and iso["geometry"]["type"] == "Polygon"
    assert shape(iso["geometry"]).contains(Point(*STATION))
    assert not shape(layers["not_covered"]["geometry"]).contains(Point(*STATION))
    districts = {d["code"]: d for d in report["districts"]}
    gangnam, jongno = districts["11680"], districts["11110"]
    assert 0.5 < gangnam["covered_share"] <= 1 and jongno["covered_share"] == 0  # Jongno is ~10 km away
    assert gangnam["population"] == 536_107  # the latest year of area_statistics
    # the share is rounded to 4 places in the answer, people are counted from the exact share
    assert gangnam["people_not_covered"] == pytest.approx(536_107 * (1 - gangnam["covered_share"]), abs=60)
    assert jongno["population"] is None and jongno["people_not_covered"] is None  # no statistics: none invented


def test_a_closure_around_the_station_shrinks_its_coverage(api):
    before = api.get("/api/v1/coverage", role="operator", isochrones=False).json()
    closed = api.post("/api/v1/roads/closures", {"reason": "침수", "geometry": square(127.035, 37.49, 127.06, 37.52)})
    assert closed.status_code == 201
    after = api.get("/api/v1/coverage", role="operator", isochrones=False).json()
    assert after["covered_share"] < before["covered_share"]
    assert {f["properties"]["layer"] for f in after["features"]} == {"not_covered"}
    assert after["hazard_areas_in_force"] == 1


def test_citizens_cannot_read_the_coverage_report(api):
    assert api.get("/api/v1/coverage", role="citizen").status_code == 403


def test_covered_nodes_are_exactly_those_within_the_golden_time_of_some_station():
    graph = grid_graph(50)
    net = Network(graph, Router(graph).landmarks)
    stations = [coverage.Station(1, "a", None, 126.9, 37.5), coverage.Station(2, "b", None, 127.1, 37.65)]
    seconds = coverage.reached(net, stations, 420)
    nodes, _ = graph.nearest_nodes([(s.lon, s.lat) for s in stations])
    full = dijkstra(graph.matrix(), indices=nodes).min(axis=0)
    assert np.array_equal(np.isfinite(seconds), full <= 420)
    assert np.allclose(seconds[np.isfinite(seconds)], full[full <= 420])
