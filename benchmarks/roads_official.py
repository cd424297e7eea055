"""Routing, evacuation trees and golden-time coverage on Seoul's OFFICIAL road network, beside the
synthetic Seoul-sized grid, each against networkx on the same graph in the same run; then the share
of each district's population within the golden time on real roads.

The official network is Korea's standard node-link (표준노드링크), the Seoul cut in
../shared/data/roads/seoul-standard-node-link (Gangdong-gu is missing from it). The measurements
are those of ``benchmarks/routing.py`` (same functions, same random pairs and closures), run on
both graphs. The district table loads the Seoul pack into a fresh embedded DB and asks
``haechi.roads.coverage`` exactly what ``GET /api/v1/coverage`` answers.

    .venv/bin/python benchmarks/roads_official.py [--side 316] [--queries 60] [--runs 5] [--no-grid]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from shapely.geometry import box

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from benchmarks import routing
from haechi.cities.load import load_city
from haechi.roads import coverage, hazards
from haechi.roads.city_pack import install
from haechi.roads.graph import RoadGraph
from haechi.roads.node_link import load_node_link
from haechi.roads.router import Router, choose_landmarks
from haechi.roads.service import Network
from haechi.roads.synthetic import grid_graph
from haechi.store import open_db

SHARED = ROOT.parent / "shared" / "data" / "roads" / "seoul-standard-node-link"


def measure(title: str, graph: RoadGraph, args: argparse.Namespace) -> Router:
    """The three measurements of benchmarks/routing.py on one graph."""
    print(f"\n== {title}: {graph.node_count:,} nodes, {graph.arc_count:,} arcs — {graph.meta.get('source')}")
    t = time.perf_counter()
    landmarks = choose_landmarks(graph)
    print(f"landmarks ({landmarks.to_nodes.shape[0]}): {time.perf_counter() - t:.2f} s once per graph")
    router = Router(graph, landmarks=landmarks)
    router.seconds(0, 1)  # compile (numba caches it on disk after the first run)
    reference = routing.to_networkx(graph, graph.seconds)
    routing.bench_routes(graph, router, reference, args.queries, args.router_queries)
    del reference
    routing.bench_evacuation(graph, router, args.shelters, args.runs)
    routing.bench_coverage(graph, router, args.runs)
    return router


def citywide_rain(graph: RoadGraph) -> hazards.Zone:
    """Heavy rain over the whole city: every road at the speed factor of data/hazard_effects.toml (50 %)."""
    factor = hazards.effects()["heavy_rain"]["speed_factor"]
    area = box(graph.lon.min() - 0.01, graph.lat.min() - 0.01, graph.lon.max() + 0.01, graph.lat.max() + 0.01)
    return hazards.Zone("warning", 0, "heavy rain, citywide", "slowed", factor, area)


def district_table(graph: RoadGraph, router: Router) -> None:
    """Per district: population, road nodes, share within the golden time (as GET /api/v1/coverage),
    at posted limits and with every road slowed as in heavy rain."""
    with tempfile.TemporaryDirectory() as folder:
        engine = open_db(f"sqlite:///{Path(folder) / 'seoul.db'}")
        load_city(engine, "seoul")
        with engine.connect() as conn:
            free = coverage.coverage(conn, Network(graph, router.landmarks), with_isochrones=False)
            rain = coverage.coverage(conn, Network(graph, router.landmarks, [citywide_rain(graph)]),
                                     with_isochrones=False)
        engine.dispose()
    limit = free["golden_time_s"] / 60
    print(f"\n== share of each district's population within {limit:g} min of a fire station "
          f"({free['stations']} stations, official network; free-flow at posted limits | every road at half speed)")
    print(f"{'district':<18}{'population':>12}{'road nodes':>12}{'covered':>10}{'not covered':>13}"
          f"{'½ speed':>10}{'not covered':>13}")
    totals = {"free": [0.0, 0.0], "rain": [0.0, 0.0]}
    for d, r in zip(free["districts"], rain["districts"], strict=True):
        cells = []
        for key, row in (("free", d), ("rain", r)):
            share = row["covered_share"]
            cells.append("—" if share is None else f"{share:.1%}")
            cells.append("—" if row["people_not_covered"] is None else f"{row['people_not_covered']:,}")
            if share is not None and row["population"]:
                totals[key][0] += row["population"]
                totals[key][1] += row["population"] * share
        print(f"{d['name_en']:<18}{d['population'] or 0:>12,.0f}{d['road_nodes']:>12,}{cells[0]:>10}{cells[1]:>13}"
              f"{cells[2]:>10}{cells[3]:>13}" + (f"   ({d['note']})" if d.get("note") else ""))
    for key, label in (("free", "at posted limits"), ("rain", "at half speed")):
        people, reached = totals[key]
        print(f"Seoul (districts with road data), {label}: {reached / people:.2%} of {people:,.0f} people "
              f"within {limit:g} min")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--network", type=Path, default=SHARED, help="standard node-link folder")
    parser.add_argument("--side", type=int, default=316, help="synthetic grid side (316 → ~100,000 nodes)")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--router-queries", type=int, default=1000)
    parser.add_argument("--shelters", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--no-grid", action="store_true", help="skip the synthetic grid")
    args = parser.parse_args()
    print(f"CPU: {os.cpu_count()} cores shared with other work (figures are under contention)")
    t = time.perf_counter()
    official = load_node_link(args.network)
    print(f"import of the standard node-link tables ({official.meta['counts']['links']:,} links): "
          f"{time.perf_counter() - t:.2f} s")
    with tempfile.TemporaryDirectory() as folder:
        t = time.perf_counter()
        installed = install("seoul", Path(folder) / "roads.npz")
        print(f"`city load` road step (read, build, landmarks, cache): {time.perf_counter() - t:.2f} s — "
              f"{installed.status}")
    router = measure("OFFICIAL Seoul network (standard node-link)", official, args)
    if not args.no_grid:
        t = time.perf_counter()
        grid = grid_graph(args.side)
        print(f"\n(synthetic grid built in {time.perf_counter() - t:.2f} s)")
        measure("SYNTHETIC Seoul-sized grid", grid, args)
    district_table(official, router)


if __name__ == "__main__":
    main()
