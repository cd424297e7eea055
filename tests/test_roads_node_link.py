"""Korea's standard node-link road network (표준노드링크): the reader, the Seoul pack's network, the API on it.

A small network hand-written in the published format (MOCT_NODE / MOCT_LINK columns, coordinates in
the standard's EPSG:5186) checks the rules one by one, as CSV and as a shapefile; the Seoul cut in
../shared/data (7,405 nodes, 19,967 links; Gangdong-gu missing) is read whole, loaded by
``haechi city load`` and routed on through the API, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import csv
import gzip
import json
import shutil

import numpy as np
import pytest
from conftest import SHARED_DATA
from fastapi.testclient import TestClient
from pyproj import CRS
from typer.testing import CliRunner

from haechi.api import create_app
from haechi.cities import BUILTIN
from haechi.cities.load import load_city
from haechi.core.settings import Settings
from haechi.roads import city_pack
from haechi.roads.commands import app as roads_cli
from haechi.roads.graph import RoadGraph
from haechi.roads.layer import road_features
from haechi.roads.node_link import load_node_link, road_ranks
from haechi.roads.osm import RoadImportError, load_roads
from haechi.roads.router import Router
from haechi.roads.service import Network, build_cache
from haechi.roads.synthetic import grid_graph
from haechi.store import access

SEOUL_NODE_LINK = SHARED_DATA / "roads" / "seoul-standard-node-link"
needs_seoul = pytest.mark.skipif(not (SEOUL_NODE_LINK / "links.csv").exists(),
                                 reason="../shared/data/roads/seoul-standard-node-link is not here")

# EPSG:5186 (GRS80, central origin): false easting 200,000 m and northing 600,000 m at 127°E 38°N,
# so x = 200,000 is the 127° meridian; y = 550,000 is ~50 km south of 38°N (≈ 37.55°N, Seoul).
NODES = [  # NODE_ID, NODE_TYPE, NODE_NAME, X, Y
    (1000000001, 101, "가교차로", 200000.0, 550000.0),
    (1000000002, 101, "나교차로", 200600.0, 550000.0),
    (1000000003, 101, "다교차로", 200600.0, 550500.0),
    (1000000004, 101, "막다른길", 200000.0, 549000.0),  # reached by a one-way link only: a dead end
]
LINKS = [  # LINK_ID, F_NODE, T_NODE, LANES, ROAD_RANK, ROAD_NAME, MAX_SPD, ROAD_USE, LENGTH
    (1, 1000000001, 1000000002, 2, 104, "가로", 60, 0, 600.0),  # two-way street: two links
    (2, 1000000002, 1000000001, 2, 104, "가로", 60, 0, 600.0),
    (3, 1000000002, 1000000003, 1, 104, "나로", 0, 0, 500.0),  # one-way, no posted limit: rank 104 default
    (4, 1000000003, 1000000002, 1, 104, "나로", 0, 1, 500.0),  # ... its other direction not in use
    (5, 1000000003, 1000000001, 1, 107, "다길", "", 0, 800.0),  # one-way back, no limit: rank 107 default
    (6, 1000000001, 1000000004, 1, 107, "라길", 30, 0, 1000.0),  # into the dead end (no way out)
    (7, 1000000002, 1000009999, 1, 107, "마길", 30, 0, 400.0),  # to a node not in the node table
]
LINK_HEADER = ["LINK_ID", "F_NODE", "T_NODE", "LANES", "ROAD_RANK", "ROAD_NAME", "MAX_SPD", "ROAD_USE", "LENGTH"]
A, B, C = 1000000001, 1000000002, 1000000003


def write_csv(folder, encoding="cp949"):
    """The two tables as CSV with the published column names, in the official CP949 encoding."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "MOCT_NODE.csv", "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(["NODE_ID", "NODE_TYPE", "NODE_NAME", "X", "Y"])
        w.writerows(NODES)
    with open(folder / "MOCT_LINK.csv", "w", newline="", encoding=encoding) as f:
        w = csv.writer(f)
        w.writerow(LINK_HEADER)
        w.writerows(LINKS)
    return folder


def write_shapefile(folder):
    """The same network as the official download: MOCT_NODE.shp points, MOCT_LINK.shp lines, a .prj."""
    import shapefile

    folder.mkdir(parents=True, exist_ok=True)
    xy = {n[0]: (n[3], n[4]) for n in NODES}
    with shapefile.Writer(str(folder / "MOCT_NODE"), shapeType=shapefile.POINT, encoding="cp949") as w:
        w.field("NODE_ID", "C", 10)
        w.field("NODE_TYPE", "C", 3)
        w.field("NODE_NAME", "C", 30)
        for node_id, kind, name, x, y in NODES:
            w.point(x, y)
            w.record(str(node_id), str(kind), name)
    with shapefile.Writer(str(folder / "MOCT_LINK"), shapeType=shapefile.POLYLINE, encoding="cp949") as w:
        for name, kind, size, decimals in (("LINK_ID", "C", 10, 0), ("F_NODE", "C", 10, 0), ("T_NODE", "C", 10, 0),
                                           ("LANES", "N", 4, 0), ("ROAD_RANK", "C", 3, 0), ("ROAD_NAME", "C", 30, 0),
                                           ("MAX_SPD", "N", 4, 0), ("ROAD_USE", "C", 1, 0), ("LENGTH", "N", 18, 12)):
            w.field(name, kind, size, decimals)
        for link in LINKS:
            ends = [xy.get(link[1], (0.0, 0.0)), xy.get(link[2], (0.0, 0.0))]
            w.line([ends])
            w.record(*[str(v) if i in (0, 1, 2, 4, 7) else v for i, v in enumerate(link)])
    for stem in ("MOCT_NODE", "MOCT_LINK"):
        (folder / f"{stem}.prj").write_text(CRS.from_epsg(5186).to_wkt("WKT1_ESRI"))
    return folder


def arcs(graph: RoadGraph) -> dict[tuple[float, float], float]:
    """(tail lon rounded, head lon rounded) → seconds; the hand network's nodes differ by position."""
    return {(round(float(graph.lon[t]), 5), round(float(graph.lat[t]), 5), round(float(graph.lon[h]), 5),
             round(float(graph.lat[h]), 5)): float(s) for t, h, s in zip(graph.tail, graph.head, graph.seconds,
                                                                          strict=True)}


def node_at(graph: RoadGraph, node_id: int) -> int:
    x, y = next((n[3], n[4]) for n in NODES if n[0] == node_id)
    lon, lat = to_wgs84(x, y)
    nodes, metres = graph.nearest_nodes([(lon, lat)])
    assert metres[0] < 0.01
    return int(nodes[0])


def to_wgs84(x, y):
    from pyproj import Transformer

    return Transformer.from_crs(5186, 4326, always_xy=True).transform(x, y)


def test_projected_coordinates_are_converted_from_the_standard_crs():
    # the projection's origin is exactly 127°E 38°N: a check that does not use the code under test
    lon, lat = to_wgs84(200000.0, 600000.0)
    assert (lon, lat) == pytest.approx((127.0, 38.0), abs=1e-9)


@pytest.mark.parametrize("write", [write_csv, write_shapefile], ids=["csv", "shapefile"])
def test_links_are_directed_one_way_streets_kept_and_speeds_fall_back_to_the_rank(tmp_path, write):
    graph = load_roads(write(tmp_path / "nodelink"))
    ab, ba, bc, ca = ((node_at(graph, f), node_at(graph, t)) for f, t in ((A, B), (B, A), (B, C), (C, A)))
    got = {(int(t), int(h)): float(s) for t, h, s in zip(graph.tail, graph.head, graph.seconds, strict=True)}
    rank = road_ranks()
    assert got == pytest.approx({
        ab: 600 / (60 / 3.6), ba: 600 / (60 / 3.6),  # the posted limit
        bc: 500 / (rank[104].default_kmh / 3.6),  # MAX_SPD 0: the metropolitan road's default
        ca: 800 / (rank[107].default_kmh / 3.6),  # MAX_SPD empty: the city road's default
    })
    assert graph.node_count == 3  # the dead end (enter, never leave) is not part of the network
    assert float(graph.metres.sum()) == pytest.approx(600 + 600 + 500 + 800)  # LENGTH, not the straight line
    counts = graph.meta["counts"]
    assert counts == {"links": 7, "links_unknown_end": 1, "links_not_in_use": 1, "links_outside_main_part": 1,
                      "nodes": 4, "nodes_outside_main_part": 1, "speed_from_limit_share": 0.5}
    assert sorted(graph.lanes.tolist()) == [1, 1, 2, 2]
    assert not graph.synthetic and graph.meta["format"] == "node-link"
    # one-way respected: C → B cannot take the closed direction, it goes round through A
    seconds, path = Router(graph).route(node_at(graph, C), node_at(graph, B))
    assert seconds == pytest.approx(got[ca] + got[ab])
    assert [int(v) for v in path] == [node_at(graph, C), node_at(graph, A), node_at(graph, B)]


def test_a_link_file_finds_its_node_file_and_csv_may_be_utf8_with_lon_lat(tmp_path):
    folder = write_csv(tmp_path / "a")
    from_link_file = load_roads(folder / "MOCT_LINK.csv")
    assert from_link_file.node_count == 3
    # the shared Seoul extract's layout: lower-case names, WGS84 lon/lat, Source/Target as in getCSV.py
    plain = tmp_path / "b"
    plain.mkdir()
    with open(plain / "nodes.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["Id", "longitude", "latitude"])
        for node_id, _, _, x, y in NODES:
            w.writerow([node_id, *to_wgs84(x, y)])
    with open(plain / "links.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["LINK_ID", "Source", "Target", "LANES", "ROAD_RANK", "ROAD_NAME", "MAX_SPD", "ROAD_USE",
                    "SHAPE_STLe"])
        w.writerows(LINKS)
    assert arcs(load_roads(plain)) == pytest.approx(arcs(from_link_file))


def test_files_that_are_not_a_network_are_refused_clearly(tmp_path):
    (tmp_path / "MOCT_LINK.csv").write_text("LINK_ID,F_NODE\n1,2\n", encoding="utf-8")
    with pytest.raises(RoadImportError, match="partner"):
        load_roads(tmp_path / "MOCT_LINK.csv")
    (tmp_path / "MOCT_NODE.csv").write_text("NODE_ID,X,Y\n2,200000,550000\n", encoding="utf-8")
    with pytest.raises(RoadImportError, match="T_NODE"):
        load_roads(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    result = CliRunner().invoke(roads_cli, ["import", str(empty), "--out", str(tmp_path / "r.npz")])
    assert result.exit_code == 1 and "MOCT_NODE" in result.output


def test_roads_import_reads_a_shapefile_folder_and_says_what_it_left_out(tmp_path, monkeypatch):
    monkeypatch.setenv("COLUMNS", "200")
    folder = write_shapefile(tmp_path / "download")
    out = tmp_path / "roads.npz"
    result = CliRunner().invoke(roads_cli, ["import", str(folder), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "3 nodes · 4 arcs (real" in result.output
    assert "7 links read: 1 with an end node not in the data, 1 not in use" in result.output
    assert RoadGraph.load(out).lanes is not None and (tmp_path / "roads.landmarks.npz").exists()


# ── the Seoul cut in ../shared/data ──────────────────────────────────────────────────────────


@pytest.fixture(scope="module")
def seoul_graph():
    return load_node_link(SEOUL_NODE_LINK)


@needs_seoul
def test_the_seoul_cut_is_read_whole(seoul_graph):
    g = seoul_graph
    counts = g.meta["counts"]
    assert counts["nodes"] == 7_405 and counts["links"] == 19_967
    # kept: the connected network; what is left out is small and counted
    assert g.node_count == 7_304 and g.arc_count == 19_060
    assert counts["links_unknown_end"] == 307 and counts["links_not_in_use"] == 453
    assert (126.76 < g.lon.min()) and (g.lon.max() < 127.17) and (37.43 < g.lat.min()) and (g.lat.max() < 37.70)
    assert 5_000 < g.metres.sum() / 1000 < 5_100  # km of directed links, from each link's own LENGTH
    # links are directed: some node pairs are joined one way only (one-way streets)
    pairs = set(zip(g.tail.tolist(), g.head.tolist(), strict=True))
    assert sum((h, t) not in pairs for t, h in pairs) > 4_000
    # speeds are the posted limits: 60 and 30 km/h the most common, expressways up to 110
    kmh = np.round(g.metres / g.seconds * 3.6)
    assert set(np.unique(kmh)) <= {10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110}
    assert g.classes == ["101", "102", "103", "104", "105", "106", "107", "108"]


@needs_seoul
def test_seoul_routes_follow_real_roads(seoul_graph):
    net = Network(seoul_graph, Router(seoul_graph).landmarks)
    city_hall, gangnam_station = (126.9780, 37.5665), (127.0276, 37.4979)
    found = net.route(city_hall, gangnam_station)
    nodes = found["nodes"]
    metres = float(np.asarray(net.metres_matrix[nodes[:-1], nodes[1:]]).ravel().sum())
    # 8.9 km as the crow flies; by road across the Han on a bridge, at posted limits
    assert 9_000 < metres < 12_000 and 8 * 60 < found["seconds"] < 15 * 60
    assert seoul_graph.lat[nodes].min() < 37.51 < seoul_graph.lat[nodes].max()  # it crossed the river


@needs_seoul
def test_the_road_layer_is_the_major_roads_and_light(seoul_graph):
    features = road_features(seoul_graph)
    assert [f["properties"]["rank"] for f in features] == [101, 102, 103, 104]
    assert all(f["geometry"]["type"] in ("LineString", "MultiLineString") for f in features)
    assert len(json.dumps(features)) < 300_000  # a few hundred KB at most for the whole city
    assert len(json.dumps(road_features(seoul_graph, 108))) > len(json.dumps(features))


# ── the pack's network: `city load` builds the road graph from it ───────────────────────────


def pack_with_roads(tmp_path, roads_folder):
    """A copy of the Seoul pack shipping the network of ``roads_folder``, gzipped as a pack would."""
    pack = tmp_path / "pack"
    shutil.copytree(BUILTIN / "seoul", pack)
    (pack / "roads").mkdir()
    for table in roads_folder.iterdir():
        with open(table, "rb") as raw, gzip.open(pack / "roads" / f"{table.name}.gz", "wb") as packed:
            shutil.copyfileobj(raw, packed)
    text = (pack / "pack.toml").read_text(encoding="utf-8")
    (pack / "pack.toml").write_text(text.replace('search = ["roads", ', 'search = ["roads", "nowhere", '),
                                    encoding="utf-8")
    return pack


def test_city_load_installs_the_packs_network_once_and_keeps_an_imported_one(tmp_path):
    pack = pack_with_roads(tmp_path, write_csv(tmp_path / "nl"))
    target = tmp_path / "cache" / "haechi-roads.npz"
    first = city_pack.install(str(pack), target)
    assert first.status == "built" and "from the pack" in first.message and "Gangdong" in first.message
    graph = RoadGraph.load(target)
    assert graph.node_count == 3 and "MOCT_LINK.csv.gz" in graph.meta["source"]
    assert graph.meta["missing_districts"] == ["11740"] and graph.meta["pack"]["city"] == "11"
    assert city_pack.install(str(pack), target).status == "current"  # loading the city again rebuilds nothing
    build_cache(grid_graph(5), target)
    assert city_pack.install(str(pack), target).status == "built"  # real roads replace the synthetic grid
    other = load_roads(write_csv(tmp_path / "other"))
    build_cache(other, target)
    kept = city_pack.install(str(pack), target)
    assert kept.status == "kept" and "haechi roads import" in kept.message
    shutil.rmtree(pack / "roads")
    missing = city_pack.install(str(pack), tmp_path / "elsewhere.npz")
    assert missing.status == "missing" and "roads import" in missing.message


@needs_seoul
def test_the_seoul_pack_finds_the_shared_network_and_says_where_it_came_from(tmp_path):
    installed = city_pack.install("seoul", tmp_path / "roads.npz")
    assert installed.status == "built" and str(SEOUL_NODE_LINK.resolve()) in installed.message
    assert "Gangdong" in installed.message and installed.graph.node_count == 7_304


# ── end to end through the API, on the official network, SQLite and PostgreSQL ───────────────


@needs_seoul
def test_routes_coverage_evacuation_and_basemap_on_the_official_network(engine, tmp_path):
    load_city(engine, "seoul")
    road_graph = tmp_path / "haechi-roads.npz"
    assert city_pack.install("seoul", road_graph).status == "built"
    with engine.begin() as conn:
        _, token = access.create_token(conn, "operator-1", "operator", center="119")
    http = TestClient(create_app(engine, Settings(road_graph=str(road_graph))))
    auth = {"Authorization": f"Bearer {token}"}

    route = http.get("/api/v1/routes", params={"from": "126.9780,37.5665", "to": "127.0276,37.4979"}, headers=auth)
    assert route.status_code == 200, route.text
    props = route.json()["properties"]
    assert props["synthetic_graph"] is False and "표준노드링크" in props["graph_source"]
    assert 9_000 < props["metres"] < 12_000 and 8 * 60 < props["seconds"] < 15 * 60

    # 119 travel times (haechi/response/travel.py) follow the same roads
    from haechi.response import travel

    settings = Settings(road_graph=str(road_graph), database_url=engine.url.render_as_string(hide_password=False))
    times, method = travel.travel_times(settings, [(126.9780, 37.5665)], (127.0276, 37.4979))
    assert method == travel.ROAD_GRAPH and times[0] == pytest.approx(props["seconds"], abs=0.1)

    report = http.get("/api/v1/coverage", params={"isochrones": "false"}, headers=auth).json()
    assert report["stations"] == 144 and report["synthetic_graph"] is False
    districts = {d["name_en"]: d for d in report["districts"]}
    assert len(districts) == 25
    gangdong = districts["Gangdong-gu"]
    assert gangdong["covered_share"] is None and gangdong["people_not_covered"] is None
    assert "Gangdong" in gangdong["note"]
    shares = [d["covered_share"] for name, d in districts.items() if name != "Gangdong-gu"]
    assert all(0.5 <= s <= 1 for s in shares)  # every other district has its own share on real roads
    assert all(d["road_nodes"] >= 100 for name, d in districts.items() if name != "Gangdong-gu")

    evacuation = http.get("/api/v1/evacuation", params={"at": "126.9780,37.5665"})
    assert evacuation.status_code == 200, evacuation.text
    leg = evacuation.json()["properties"]
    assert leg["shelter"]["capacity"] > 0 and 0 < leg["seconds"] < 600 and leg["synthetic_graph"] is False

    base = http.get("/api/v1/basemap")  # public, like the boundaries
    assert base.status_code == 200 and len(base.content) < 400_000
    body = base.json()
    layers = [f["properties"]["layer"] for f in body["features"]]
    assert layers[0] == "water" and layers.count("road") == body["roads"] == 4
    assert "Gangdong" in body["note"] and body["missing_districts"] == ["11740"]
    assert any("표준노드링크" in a for a in body["attribution"])


def test_a_district_the_road_data_leaves_out_gets_no_share_even_unannounced():
    from haechi.roads.coverage import undescribed

    districts = [{"code": c, "area_km2": 25.0} for c in ("11110", "11140", "11170", "11740")]
    graph = grid_graph(3)  # meta names no missing district: the density alone tells
    gaps = undescribed(graph, districts, np.array([300, 280, 0, 10]))
    assert set(gaps) == {"11170", "11740"}
    assert "no road node" in gaps["11170"] and "only 10 road nodes" in gaps["11740"]
    graph.meta |= {"missing_districts": ["11740"], "note": "강동구 is missing"}
    assert undescribed(graph, districts, np.array([300, 280, 290, 10]))["11740"] == "강동구 is missing"


def test_basemap_without_a_road_graph_still_has_the_river(engine, tmp_path):
    http = TestClient(create_app(engine, Settings(road_graph=str(tmp_path / "none.npz"))))
    body = http.get("/api/v1/basemap").json()
    assert body["roads"] == 0 and [f["properties"]["name_en"] for f in body["features"]] == ["Han River"]


def test_the_river_file_is_what_its_derivation_gives():
    import importlib.util

    spec = importlib.util.spec_from_file_location("derive_river", BUILTIN / "seoul" / "derive_river.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert module.TARGET.read_text(encoding="utf-8") == module.derive()
