"""Routing is exact: equal to networkx's Dijkstra on random graphs and pairs; closed roads never used."""

from __future__ import annotations

import math

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import box

from haechi.roads import hazards
from haechi.roads.graph import RoadGraph
from haechi.roads.router import Router
from haechi.roads.service import Network, travel_times
from haechi.roads.synthetic import grid_graph


def random_graph(seed: int, side: int, keep: float, one_way: float) -> RoadGraph:
    """A grid with random travel times, some streets missing and some one-way (so some pairs are cut off)."""
    rng = np.random.default_rng(seed)
    g = grid_graph(side, seed=seed, diagonals=side)
    forward = len(g.tail) // 2
    keep_edge = rng.random(forward) < keep
    back = keep_edge & (rng.random(forward) >= one_way)
    chosen = np.concatenate([keep_edge, back])
    seconds = rng.uniform(1, 100, forward)
    seconds = np.round(np.concatenate([seconds, seconds * rng.uniform(0.5, 2, forward)]), 3)
    return RoadGraph(g.lon, g.lat, g.tail[chosen], g.head[chosen], seconds[chosen], g.metres[chosen],
                     g.road_class[chosen], g.classes, g.meta)


def reference(graph: RoadGraph, weights: np.ndarray) -> nx.DiGraph:
    """networkx's graph of the same arcs (closed ones left out; the fastest of parallel arcs kept)."""
    g = nx.DiGraph()
    g.add_nodes_from(range(graph.node_count))
    for t, h, w in zip(graph.tail.tolist(), graph.head.tolist(), weights.tolist(), strict=True):
        if math.isfinite(w) and (not g.has_edge(t, h) or g[t][h]["seconds"] > w):
            g.add_edge(t, h, seconds=w)
    return g


def nx_seconds(g: nx.DiGraph, a: int, b: int) -> float:
    try:
        return nx.dijkstra_path_length(g, a, b, weight="seconds")
    except nx.NetworkXNoPath:
        return math.inf


def path_arcs(path: np.ndarray) -> set[tuple[int, int]]:
    return set(zip(path[:-1].tolist(), path[1:].tolist(), strict=True))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), side=st.integers(2, 12), keep=st.floats(0.5, 1.0),
       one_way=st.floats(0.0, 0.5), pairs=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)),
                                                   min_size=1, max_size=15))
def test_travel_times_equal_networkx_dijkstra_on_random_graphs_and_pairs(seed, side, keep, one_way, pairs):
    graph = random_graph(seed, side, keep, one_way)
    router, ref = Router(graph), reference(graph, graph.seconds)
    for a, b in ((a % graph.node_count, b % graph.node_count) for a, b in pairs):
        seconds, path = router.route(a, b)
        expected = nx_seconds(ref, a, b)
        assert seconds == pytest.approx(expected, rel=1e-12, abs=1e-9)
        if math.isfinite(expected):  # the path is real: its arcs exist and add up to the time
            assert path[0] == a and path[-1] == b
            assert sum(ref[u][v]["seconds"] for u, v in path_arcs(path)) == pytest.approx(seconds, rel=1e-12)
        else:
            assert len(path) == 0


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), side=st.integers(3, 12), closed_share=st.floats(0.0, 0.6),
       pairs=st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 10_000)), min_size=1, max_size=15))
def test_closed_roads_are_never_used_and_times_match_the_graph_without_them(seed, side, closed_share, pairs):
    graph = random_graph(seed, side, 1.0, 0.0)
    rng = np.random.default_rng(seed + 1)
    closed = rng.random(graph.arc_count) < closed_share
    weights = np.where(closed, np.inf, graph.seconds)
    router = Router(graph).with_weights(weights)  # free-flow landmarks, as after a closure in service
    ref = reference(graph, weights)
    closed_arcs = set(zip(graph.tail[closed].tolist(), graph.head[closed].tolist(), strict=True))
    open_arcs = set(zip(graph.tail[~closed].tolist(), graph.head[~closed].tolist(), strict=True))
    for a, b in ((a % graph.node_count, b % graph.node_count) for a, b in pairs):
        seconds, path = router.route(a, b)
        assert seconds == pytest.approx(nx_seconds(ref, a, b), rel=1e-12, abs=1e-9)
        assert path_arcs(path) <= open_arcs and not (path_arcs(path) & (closed_arcs - open_arcs))


def test_a_closure_polygon_diverts_routes_around_it_and_slowing_costs_time():
    graph = grid_graph(60)
    free = Network(graph, Router(graph).landmarks)
    origin, destination = (126.90, 37.56), (127.05, 37.56)
    straight = free.route(origin, destination)
    blocked_area = box(126.96, 37.50, 126.99, 37.60)
    closed = Network(graph, free.landmarks, [hazards.Zone("closure", 1, "t", "closed", 1.0, blocked_area)])
    around = closed.route(origin, destination)
    assert around["seconds"] > straight["seconds"]
    inside = hazards.affected_arcs(graph, blocked_area)
    assert path_arcs(around["nodes"]).isdisjoint(
        set(zip(graph.tail[inside].tolist(), graph.head[inside].tolist(), strict=True)))
    slowed = Network(graph, free.landmarks,
                     [hazards.Zone("warning", 2, "t", "slowed", 0.5, box(126.7, 37.4, 127.2, 37.8))])
    assert slowed.route(origin, destination)["seconds"] == pytest.approx(2 * straight["seconds"])


def test_travel_times_for_the_response_capability():
    graph = grid_graph(40)
    net = Network(graph, Router(graph).landmarks)
    times = travel_times(net, [(126.9, 37.5), (127.1, 37.7), (140.0, 30.0)], (127.0, 37.6))
    assert times[0] == pytest.approx(net.route((126.9, 37.5), (127.0, 37.6))["seconds"])
    assert times[1] > 0 and times[2] is None  # far off the graph: no made-up time
    assert travel_times(net, [], (127.0, 37.6)) == []


def test_travel_times_without_a_graph_are_all_none(tmp_path):
    from haechi.core.settings import Settings

    assert travel_times(Settings(road_graph=str(tmp_path / "none.npz")), [(127, 37.5)] * 2, (127, 37.6)) == [None, None]
