"""Point-to-point routing: A* with landmark lower bounds (ALT), compiled with numba.

ALT (Goldberg & Harrelson, "Computing the shortest path: A* search meets graph theory", SODA
2005) bounds the distance v → t by the triangle inequality over a few landmarks L:
``d(v,t) ≥ max(d(L,t) − d(L,v), d(v,L) − d(t,L))``. The landmark distances are computed once on
the free-flow graph with SciPy's Dijkstra. Closing or slowing a road only makes arcs dearer, so
free-flow bounds stay valid under every closure: a closure needs a new adjacency, not new landmarks.
The search reopens nodes (no closed set), so it stays exact even where float rounding makes the
bound a hair inconsistent; it stops when the target is popped, which A* guarantees is optimal.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass

import numpy as np
from numba import njit
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import dijkstra

from .graph import RoadGraph

LANDMARKS = 16  # more tighten the bound but cost memory and a Dijkstra pair each (Goldberg 2005 used 16)
# Per query, use the landmarks with the best bound for the pair. On the Seoul-size grid all 16 were
# fastest (4 or 8 "active" ones pruned too little to pay for their cheaper per-node bound).
ACTIVE_LANDMARKS = 16


@dataclass
class Landmarks:
    to_nodes: np.ndarray  # float64[k, n]: d(L, v)
    from_nodes: np.ndarray  # float64[k, n]: d(v, L)


def choose_landmarks(graph: RoadGraph, count: int = LANDMARKS) -> Landmarks:
    """Farthest-point landmarks on the free-flow graph (each new one farthest from those chosen)."""
    forward, backward = graph.matrix(), graph.matrix(reverse=True)
    n = graph.node_count
    count = min(count, n)
    centre = int(np.argmin((graph.lon - graph.lon.mean()) ** 2 + (graph.lat - graph.lat.mean()) ** 2))
    start = dijkstra(forward, indices=centre)
    start[~np.isfinite(start)] = -1
    chosen, to_rows, from_rows = [int(np.argmax(start))], [], []
    nearest = np.full(n, np.inf)
    while True:
        landmark = chosen[-1]
        to_rows.append(dijkstra(forward, indices=landmark))
        from_rows.append(dijkstra(backward, indices=landmark))
        if len(chosen) == count:
            break
        nearest = np.minimum(nearest, to_rows[-1])
        chosen.append(int(np.argmax(np.where(np.isfinite(nearest), nearest, -1))))
    return Landmarks(np.array(to_rows), np.array(from_rows))


@njit(cache=True)
def _bound(v, t, to_nodes, from_nodes, active):  # pragma: no cover - compiled
    """Lower bound on d(v, t) from the active landmarks; arrays are [node, landmark]."""
    best = 0.0
    for k in active:
        a, b = to_nodes[t, k], to_nodes[v, k]
        if a < np.inf and b < np.inf and a - b > best:
            best = a - b
        c, d = from_nodes[v, k], from_nodes[t, k]
        if c < np.inf and d < np.inf and c - d > best:
            best = c - d
    return best * (1.0 - 1e-9)  # a hair below: float rounding must never overestimate


@njit(cache=True)
def _astar(indptr, indices, weights, source, target, to_nodes, from_nodes, active, dist, pred, h):  # pragma: no cover
    """Shortest distance source → target (inf if none); ``dist``/``pred`` are scratch filled in."""
    touched = [source]
    dist[source] = 0.0
    h[source] = _bound(source, target, to_nodes, from_nodes, active)  # each node's bound, computed once
    heap_f = [h[source]]
    heap_v = [source]
    result = np.inf
    while len(heap_v) > 0:
        f, u = heap_f[0], heap_v[0]
        last_f, last_v = heap_f.pop(), heap_v.pop()
        if len(heap_v) > 0:  # sift the last item down from the root
            i, size = 0, len(heap_v)
            while True:
                c = 2 * i + 1
                if c >= size:
                    break
                if c + 1 < size and heap_f[c + 1] < heap_f[c]:
                    c += 1
                if heap_f[c] >= last_f:
                    break
                heap_f[i], heap_v[i] = heap_f[c], heap_v[c]
                i = c
            heap_f[i], heap_v[i] = last_f, last_v
        if u == target:
            result = dist[u]
            break
        du = dist[u]
        if f - h[u] > du + 1e-9 * (1.0 + du):
            continue  # stale heap entry: u was reached more cheaply since
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            nd = du + weights[e]
            if nd < dist[v]:
                if dist[v] == np.inf:
                    touched.append(v)
                    h[v] = _bound(v, target, to_nodes, from_nodes, active)
                dist[v] = nd
                pred[v] = u
                nf = nd + h[v]
                heap_f.append(nf)
                heap_v.append(v)
                i = len(heap_v) - 1
                while i > 0:  # sift up
                    p = (i - 1) // 2
                    if heap_f[p] <= nf:
                        break
                    heap_f[i], heap_v[i] = heap_f[p], heap_v[p]
                    i = p
                heap_f[i], heap_v[i] = nf, v
    path = [target]
    if result < np.inf:
        v = target
        while v != source:
            v = pred[v]
            path.append(v)
    else:
        path.pop()
    for v in touched:  # reset only what was used: the scratch arrays serve the next query
        dist[v] = np.inf
        pred[v] = -1
    return result, np.array(path[::-1], dtype=np.int64)


@njit(cache=True)
def _within(indptr, indices, weights, source, limit, dist):  # pragma: no cover - compiled
    """Nodes reachable from ``source`` within ``limit`` and their distances (Dijkstra, cut off)."""
    touched = [source]
    dist[source] = 0.0
    heap_d = [0.0]
    heap_v = [source]
    done_v = [source][:0]
    done_d = [0.0][:0]
    while len(heap_v) > 0:
        d, u = heap_d[0], heap_v[0]
        last_d, last_v = heap_d.pop(), heap_v.pop()
        if len(heap_v) > 0:
            i, size = 0, len(heap_v)
            while True:
                c = 2 * i + 1
                if c >= size:
                    break
                if c + 1 < size and heap_d[c + 1] < heap_d[c]:
                    c += 1
                if heap_d[c] >= last_d:
                    break
                heap_d[i], heap_v[i] = heap_d[c], heap_v[c]
                i = c
            heap_d[i], heap_v[i] = last_d, last_v
        if d > dist[u]:
            continue  # stale entry
        done_v.append(u)
        done_d.append(d)
        for e in range(indptr[u], indptr[u + 1]):
            v = indices[e]
            nd = d + weights[e]
            if nd <= limit and nd < dist[v]:
                if dist[v] == np.inf:
                    touched.append(v)
                dist[v] = nd
                heap_d.append(nd)
                heap_v.append(v)
                i = len(heap_v) - 1
                while i > 0:
                    p = (i - 1) // 2
                    if heap_d[p] <= nd:
                        break
                    heap_d[i], heap_v[i] = heap_d[p], heap_v[p]
                    i = p
                heap_d[i], heap_v[i] = nd, v
    for v in touched:
        dist[v] = np.inf
    return np.array(done_v, dtype=np.int64), np.array(done_d)


class Router:
    """Exact point-to-point shortest travel times over one weighting of a graph."""

    def __init__(self, graph: RoadGraph, weights: np.ndarray | None = None,
                 landmarks: Landmarks | None = None, matrix: csr_matrix | None = None):
        self.graph = graph
        self.weights = graph.seconds if weights is None else weights
        self.matrix = matrix if matrix is not None else graph.matrix(self.weights)
        self.landmarks = landmarks if landmarks is not None else choose_landmarks(graph)
        self._indptr = self.matrix.indptr.astype(np.int64)
        self._indices = self.matrix.indices.astype(np.int64)
        self._data = self.matrix.data.astype(np.float64)
        self._dist = np.full(graph.node_count, np.inf)
        self._pred = np.full(graph.node_count, -1, np.int64)
        self._h = np.zeros(graph.node_count)  # bounds, valid only for nodes touched by the running query
        # [node, landmark] layout: a node's bounds are read together (cache-friendly)
        self._to = np.ascontiguousarray(self.landmarks.to_nodes.T)
        self._from = np.ascontiguousarray(self.landmarks.from_nodes.T)
        self._scratch = threading.Lock()  # the scratch arrays serve one query at a time

    def with_weights(self, weights: np.ndarray) -> Router:
        """The same graph and landmarks under new (never cheaper) arc weights, e.g. closures."""
        return Router(self.graph, weights, self.landmarks)

    def route(self, source: int, target: int) -> tuple[float, np.ndarray]:
        """Seconds and node path source → target; (inf, empty) when the target cannot be reached."""
        active = self._best_landmarks(int(source), int(target))
        with self._scratch:
            seconds, path = _astar(self._indptr, self._indices, self._data, int(source), int(target),
                                   self._to, self._from, active, self._dist, self._pred, self._h)
        return float(seconds), path

    def _best_landmarks(self, source: int, target: int) -> np.ndarray:
        """The landmarks bounding d(source, target) best: fewer per node, nearly the same pruning
        (Goldberg & Harrelson 2005, "active landmarks")."""
        to, fr = self._to, self._from
        with np.errstate(invalid="ignore"):
            bound = np.fmax(to[target] - to[source], fr[source] - fr[target])
        bound = np.nan_to_num(bound, nan=-np.inf, posinf=-np.inf)
        return np.argsort(-bound)[:ACTIVE_LANDMARKS].astype(np.int64)

    def seconds(self, source: int, target: int) -> float:
        return self.route(source, target)[0]

    def within(self, source: int, limit: float) -> tuple[np.ndarray, np.ndarray]:
        """Nodes reached from ``source`` within ``limit`` seconds, and their seconds."""
        with self._scratch:
            return _within(self._indptr, self._indices, self._data, int(source), float(limit), self._dist)
