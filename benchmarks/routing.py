"""Route queries, evacuation-tree recompute and golden-time coverage on a Seoul-sized road graph.

The graph is SYNTHETIC (``haechi.roads.synthetic.grid_graph``: ~100,000 nodes, ~250,000 edges over
Seoul's bounding box): a Seoul-sized load. ``benchmarks/roads_official.py`` runs the same measurements
on Seoul's official road network (standard node-link) beside it; ``--graph FILE`` (an ``haechi roads
import`` cache) measures any other network here.

1. Route queries: our router (A* with landmarks, numba) against networkx's
   ``dijkstra_path_length`` on the same graph (same arcs, fastest parallel arc kept) and the same
   random pairs; prints p50/p99 of both, the speed-up of the medians, and the largest difference
   of the travel times (must be ~0).
2. Evacuation: after a new closure polygon, recompute every shelter's evacuation tree (closure
   weights + reversed adjacency + one multi-source Dijkstra), for ``--shelters`` shelters; baseline
   networkx ``multi_source_dijkstra`` on the same weights.
3. Coverage: the golden time (7 min) from every Seoul fire station in the city pack (real
   coordinates): covered nodes, one isochrone per station, the uncovered layer; baseline networkx
   per-station ``single_source_dijkstra_path_length`` with the same cutoff.

    .venv/bin/python benchmarks/routing.py [--side 316] [--queries 60] [--router-queries 1000] [--shelters 500]
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import statistics
import sys
import time
from pathlib import Path

import networkx as nx
import numpy as np
from shapely.geometry import box

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from haechi.roads import coverage, evacuation, hazards
from haechi.roads.graph import RoadGraph
from haechi.roads.router import Router, choose_landmarks
from haechi.roads.service import Network
from haechi.roads.synthetic import grid_graph

STATIONS_CSV = Path(__file__).resolve().parents[1] / "haechi" / "cities" / "seoul" / "fire_stations.csv"


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.2f} ms"


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def to_networkx(graph: RoadGraph, weights: np.ndarray) -> nx.DiGraph:
    m = graph.matrix(weights).tocoo()
    g = nx.DiGraph()
    g.add_nodes_from(range(graph.node_count))
    g.add_weighted_edges_from(zip(m.row.tolist(), m.col.tolist(), m.data.tolist(), strict=True), weight="s")
    return g


def clocked(fn):
    """(wall seconds, CPU seconds of this thread, result): CPU time is what a query costs; wall time
    also counts waiting for a core, which on a shared machine can be most of it."""
    w, c = time.perf_counter(), time.thread_time()
    result = fn()
    return time.perf_counter() - w, time.thread_time() - c, result


def nx_length(reference: nx.DiGraph, a: int, b: int) -> float:
    try:
        return nx.dijkstra_path_length(reference, a, b, weight="s")
    except nx.NetworkXNoPath:
        return math.inf


def bench_routes(graph: RoadGraph, router: Router, reference: nx.DiGraph, queries: int, many: int) -> None:
    rng = np.random.default_rng(2026)
    pairs = rng.integers(0, graph.node_count, (max(queries, many), 2))
    ours, ours_cpu, theirs, theirs_cpu, worst = [], [], [], [], 0.0
    for a, b in pairs[:queries]:
        wall, cpu, seconds = clocked(lambda a=a, b=b: router.seconds(int(a), int(b)))
        ours.append(wall)
        ours_cpu.append(cpu)
        wall, cpu, expected = clocked(lambda a=a, b=b: nx_length(reference, int(a), int(b)))
        theirs.append(wall)
        theirs_cpu.append(cpu)
        worst = max(worst, 0.0 if seconds == expected else abs(seconds - expected))
    more, more_cpu = [], []
    for a, b in pairs[:many]:
        wall, cpu, _ = clocked(lambda a=a, b=b: router.seconds(int(a), int(b)))
        more.append(wall)
        more_cpu.append(cpu)
    print(f"route queries ({queries} random pairs, same for both) — wall time | CPU time:")
    print(f"  ours (ALT A*, numba):          p50 {ms(pct(ours, 50))}  p99 {ms(pct(ours, 99))}"
          f" | p50 {ms(pct(ours_cpu, 50))}  p99 {ms(pct(ours_cpu, 99))}")
    print(f"  networkx dijkstra_path_length: p50 {ms(pct(theirs, 50))}  p99 {ms(pct(theirs, 99))}"
          f" | p50 {ms(pct(theirs_cpu, 50))}  p99 {ms(pct(theirs_cpu, 99))}")
    print(f"  speed-up of medians: {pct(theirs, 50) / pct(ours, 50):.0f}x wall, "
          f"{pct(theirs_cpu, 50) / pct(ours_cpu, 50):.0f}x CPU ; largest |Δ travel time|: {worst:.3g} s")
    print(f"  ours over {many} pairs: p50 {ms(pct(more, 50))}  p99 {ms(pct(more, 99))}"
          f" | CPU p50 {ms(pct(more_cpu, 50))}  p99 {ms(pct(more_cpu, 99))}")


def random_closure(graph: RoadGraph, rng: np.random.Generator, km: float = 2.0) -> hazards.Zone:
    lon, lat = (float(rng.uniform(graph.lon.min(), graph.lon.max())),
                float(rng.uniform(graph.lat.min(), graph.lat.max())))
    d_lat, d_lon = km / 111.2 / 2, km / 88.2 / 2
    return hazards.Zone("closure", 1, "bench", "closed", 1.0, box(lon - d_lon, lat - d_lat, lon + d_lon, lat + d_lat))


def bench_evacuation(graph: RoadGraph, router: Router, shelters_n: int, runs: int) -> None:
    rng = np.random.default_rng(9)
    picks = rng.choice(graph.node_count, shelters_n, replace=False)
    shelters = [evacuation.Shelter(i, f"s{i}", None, float(graph.lon[v]), float(graph.lat[v]), 500, 0)
                for i, v in enumerate(picks)]
    ours, ours_cpu, theirs = [], [], []
    for _ in range(runs):
        zone = random_closure(graph, rng)
        # fresh network: the closure's weights are computed inside the timing
        wall, cpu, (net, trees) = clocked(lambda zone=zone: recompute(graph, router, zone, shelters))
        ours.append(wall)
        ours_cpu.append(cpu)
    reverse = to_networkx(graph, net.evacuation_seconds).reverse(copy=False)
    nodes, _ = graph.nearest_nodes([(s.lon, s.lat) for s in trees.shelters])
    t = time.perf_counter()
    expected = nx.multi_source_dijkstra_path_length(reverse, {int(n) for n in nodes}, weight="s")
    theirs.append(time.perf_counter() - t)
    got = {v: c for v, c in enumerate(trees.cost) if np.isfinite(c)}
    worst = max(abs(got[v] - c) for v, c in expected.items())
    print(f"evacuation trees of {len(trees.shelters)} shelters after a new 2 km closure ({runs} runs):")
    print(f"  ours (closure weights + scipy multi-source Dijkstra): median {ms(statistics.median(ours))}"
          f"  max {ms(max(ours))} wall | median {ms(statistics.median(ours_cpu))} CPU")
    print(f"  networkx multi_source_dijkstra (trees only, weights given): {ms(theirs[0])}"
          f" ; same nodes reached: {len(expected) == len(got)} ; largest |Δ cost| {worst:.3g}")


def recompute(graph, router, zone, shelters):
    net = Network(graph, router.landmarks, [zone])
    return net, evacuation.evacuation_trees(net, shelters)


def coverage_once(net, stations, limit):
    seconds = coverage.reached(net, stations, limit)
    covered = np.isfinite(seconds)
    coverage.isochrones(net, stations, limit)
    coverage.uncovered_cells(net.graph, covered)
    return covered


def seoul_stations() -> list[coverage.Station]:
    with open(STATIONS_CSV, encoding="utf-8") as f:
        return [coverage.Station(i, r["name_ko"], r["name_en"], float(r["lon"]), float(r["lat"]))
                for i, r in enumerate(csv.DictReader(f)) if r.get("lon") and r.get("lat")]


def bench_coverage(graph: RoadGraph, router: Router, runs: int) -> None:
    stations = seoul_stations()
    limit, _ = coverage.golden_time()
    net = Network(graph, router.landmarks)
    net.router.within(0, 1.0)  # compile once, outside the timing (numba caches it on disk)
    ours, ours_cpu = [], []
    for _ in range(runs):
        wall, cpu, covered = clocked(lambda: coverage_once(net, stations, limit))
        ours.append(wall)
        ours_cpu.append(cpu)
    reference = to_networkx(graph, graph.seconds)
    nodes, _ = graph.nearest_nodes([(s.lon, s.lat) for s in stations])
    t = time.perf_counter()
    reached: set[int] = set()
    for node in nodes:
        reached |= set(nx.single_source_dijkstra_path_length(reference, int(node), cutoff=limit, weight="s"))
    baseline = time.perf_counter() - t
    print(f"golden-time coverage ({limit / 60:g} min) of {len(stations)} Seoul fire stations ({runs} runs):")
    print(f"  ours (covered nodes + {len(stations)} isochrones + uncovered layer): median {ms(statistics.median(ours))}"
          f" wall | {ms(statistics.median(ours_cpu))} CPU")
    print(f"  networkx per-station cutoff Dijkstra (covered nodes only): {ms(baseline)} ;"
          f" same covered nodes: {reached == set(np.flatnonzero(covered).tolist())} ;"
          f" covered share {covered.mean():.1%}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--side", type=int, default=316)
    parser.add_argument("--graph", type=Path, help="a `haechi roads import` cache instead of the synthetic grid")
    parser.add_argument("--queries", type=int, default=60)
    parser.add_argument("--router-queries", type=int, default=1000)
    parser.add_argument("--shelters", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    print(f"CPU: {os.cpu_count()} cores shared with other work (figures are under contention)")
    t = time.perf_counter()
    graph = RoadGraph.load(args.graph) if args.graph else grid_graph(args.side)
    print(f"graph: {graph.node_count:,} nodes, {graph.arc_count:,} arcs ({graph.arc_count // 2:,} two-way edges) — "
          f"{'SYNTHETIC ' if graph.synthetic else ''}{graph.meta.get('source')} ;"
          f" built in {time.perf_counter() - t:.2f} s")
    t = time.perf_counter()
    landmarks = choose_landmarks(graph)
    print(f"landmarks ({landmarks.to_nodes.shape[0]}): {time.perf_counter() - t:.2f} s once per graph"
          " (cached by `roads import`)")
    router = Router(graph, landmarks=landmarks)
    router.seconds(0, 1)  # compile (numba caches it on disk after the first run)
    t = time.perf_counter()
    reference = to_networkx(graph, graph.seconds)
    print(f"networkx graph built in {time.perf_counter() - t:.2f} s (not timed in queries)")
    bench_routes(graph, router, reference, args.queries, args.router_queries)
    del reference
    bench_evacuation(graph, router, args.shelters, args.runs)
    bench_coverage(graph, router, args.runs)


if __name__ == "__main__":
    main()
