"""Road graph building: a hand-written OpenStreetMap extract, GraphML, the cache file, the CLI."""

from __future__ import annotations

from pathlib import Path

import networkx as nx
import numpy as np
import pytest
from typer.testing import CliRunner

from haechi.cli import app
from haechi.roads.graph import RoadGraph, default_speeds
from haechi.roads.osm import RoadImportError, load_roads, parse_maxspeed
from haechi.roads.synthetic import grid_graph

EXTRACT = Path(__file__).parent / "data" / "roads_mapo.osm"


@pytest.fixture(scope="module")
def mapo() -> RoadGraph:
    return load_roads(EXTRACT)


def arcs(graph: RoadGraph) -> set[tuple[tuple[float, float], tuple[float, float]]]:
    """Arcs as ((lon, lat) → (lon, lat)), independent of node numbering."""
    pos = [(round(float(x), 4), round(float(y), 4)) for x, y in zip(graph.lon, graph.lat, strict=True)]
    return {(pos[t], pos[h]) for t, h in zip(graph.tail, graph.head, strict=True)}


N1, N2, N3 = (126.9, 37.55), (126.91, 37.55), (126.92, 37.55)
N4, N5, N6, N7 = (126.91, 37.558), (126.92, 37.558), (126.91, 37.542), (126.9, 37.542)


def test_drivable_ways_become_arcs_in_their_allowed_directions(mapo):
    found = arcs(mapo)
    assert {(N1, N2), (N2, N1), (N2, N3), (N3, N2)} <= found  # two-way arterial
    assert (N2, N4) in found and (N4, N2) not in found  # oneway=yes
    assert (N5, N3) in found and (N3, N5) not in found  # oneway=-1 runs against the node order
    assert len(found) == mapo.arc_count == 11


def test_footways_private_roads_and_buildings_are_left_out(mapo):
    assert mapo.node_count == 7  # nodes 8 and 9 belong only to a footway and a private road
    assert not any(p in {(126.9, 37.56), (126.9, 37.565)} for pair in arcs(mapo) for p in pair)


def test_travel_time_is_length_over_maxspeed_or_the_class_default(mapo):
    speeds_kmh = mapo.metres / mapo.seconds * 3.6
    by_class = {mapo.classes[c]: round(float(v), 3) for c, v in zip(mapo.road_class, speeds_kmh, strict=True)}
    assert by_class["primary"] == default_speeds()["primary"] == 50
    assert by_class["residential"] == 30
    assert by_class["tertiary"] == 40  # maxspeed=40
    assert by_class["secondary"] == pytest.approx(25 * 1.609344, abs=1e-3)  # "25 mph"
    n1_n2 = mapo.metres[mapo.road_class == mapo.classes.index("primary")][0]
    assert n1_n2 == pytest.approx(881.5, abs=1)  # 0.01° of longitude at 37.55° N, by haversine


@pytest.mark.parametrize(("text", "kmh"), [("50", 50), ("60 km/h", 60), ("30 mph", 48.28032), ("KR:urban", None),
                                           ("", None), ("none", None), ("50;30", 50)])
def test_maxspeed_values(text, kmh):
    assert parse_maxspeed(text) == (pytest.approx(kmh) if kmh else None)


def test_graphml_as_osmnx_writes_it(tmp_path):
    g = nx.MultiDiGraph()
    g.add_node(1, x=127.0, y=37.5)
    g.add_node(2, x=127.01, y=37.5)
    g.add_edge(1, 2, highway="primary", maxspeed="60")
    g.add_edge(2, 1, highway="residential")
    nx.write_graphml(g, tmp_path / "roads.graphml")
    graph = load_roads(tmp_path / "roads.graphml")
    assert graph.arc_count == 2
    assert sorted(np.round(graph.metres / graph.seconds * 3.6, 3)) == [30, 60]


def test_files_without_roads_or_of_other_kinds_are_refused(tmp_path):
    empty = tmp_path / "empty.osm"
    empty.write_text('<?xml version="1.0"?><osm version="0.6"><node id="1" lat="37.5" lon="127"/></osm>')
    with pytest.raises(RoadImportError, match="no drivable"):
        load_roads(empty)
    with pytest.raises(RoadImportError, match="expected an OpenStreetMap"):
        load_roads(tmp_path / "roads.csv")


def test_cache_file_round_trips_exactly(tmp_path, mapo):
    loaded = RoadGraph.load(mapo.save(tmp_path / "g.npz"))
    for name in ("lon", "lat", "tail", "head", "seconds", "metres", "road_class"):
        assert np.array_equal(getattr(loaded, name), getattr(mapo, name)), name
    assert loaded.classes == mapo.classes and loaded.meta == mapo.meta and not loaded.synthetic


def test_synthetic_grid_has_seouls_size_and_says_it_is_synthetic():
    graph = grid_graph(316)
    assert 99_000 <= graph.node_count <= 101_000
    assert 240_000 <= graph.arc_count / 2 <= 260_000  # undirected edges, both directions stored
    assert graph.synthetic and "synthetic" in graph.meta["source"]
    assert 126.7 < graph.lon.min() and graph.lon.max() < 127.2 and 37.4 < graph.lat.min() and graph.lat.max() < 37.72


def test_cli_import_builds_the_cache_and_info_describes_it(tmp_path):
    out = tmp_path / "roads.npz"
    result = CliRunner().invoke(app, ["roads", "import", str(EXTRACT), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert RoadGraph.load(out).node_count == 7 and out.with_name("roads.landmarks.npz").exists()
    info = CliRunner().invoke(app, ["roads", "info", "--out", str(out)])
    said = " ".join(info.output.split())  # rich wraps lines to the terminal's width
    assert "7 nodes" in said and "real" in said


def test_cli_import_of_a_bad_file_fails_with_a_message(tmp_path):
    bad = tmp_path / "bad.osm"
    bad.write_text("this is not xml")
    result = CliRunner().invoke(app, ["roads", "import", str(bad), "--out", str(tmp_path / "r.npz")])
    assert result.exit_code == 1 and "import failed" in " ".join(result.output.split())
    assert not (tmp_path / "r.npz").exists()


def test_cli_generate_labels_the_graph_synthetic(tmp_path):
    out = tmp_path / "grid.npz"
    result = CliRunner().invoke(app, ["roads", "generate", "--side", "20", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "SYNTHETIC" in " ".join(result.output.split()) and RoadGraph.load(out).synthetic
