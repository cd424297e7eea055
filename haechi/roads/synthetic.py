"""A synthetic, grid-like road graph of Seoul's size, for benchmarks and the demo until a real
OpenStreetMap extract is imported. Everything built from it is labelled synthetic.

Nodes sit on a jittered grid over Seoul's bounding box; every 10th street is an arterial
(``primary``), every 40th an urban expressway (``trunk``), the rest ``residential``; random
diagonal ``tertiary`` streets bring the edge count to about 2.5 per node, like a city's.
"""

from __future__ import annotations

import numpy as np

from .graph import RoadGraph, default_speeds, from_ways

SEOUL_BOX = (126.764, 37.413, 127.184, 37.715)  # west, south, east, north (the 25 districts' extent)


def grid_graph(
    side: int = 316, *, box: tuple[float, float, float, float] = SEOUL_BOX,
    diagonals: int | None = None, seed: int = 9,
) -> RoadGraph:
    """``side × side`` nodes (316 → ~100,000) and ~2.5 undirected edges per node, both directions."""
    rng = np.random.default_rng(seed)
    west, south, east, north = box
    cols, rows = np.meshgrid(np.arange(side), np.arange(side))
    cols, rows = cols.ravel(), rows.ravel()
    step_lon, step_lat = (east - west) / max(side - 1, 1), (north - south) / max(side - 1, 1)
    lon = west + (cols + rng.uniform(-0.25, 0.25, cols.size)) * step_lon
    lat = south + (rows + rng.uniform(-0.25, 0.25, rows.size)) * step_lat
    node = np.arange(side * side).reshape(side, side)

    h_tail, h_head = node[:, :-1].ravel(), node[:, 1:].ravel()  # along rows (east-west)
    v_tail, v_head = node[:-1, :].ravel(), node[1:, :].ravel()  # along columns
    h_line, v_line = np.repeat(np.arange(side), side - 1), np.tile(np.arange(side), side - 1)
    if diagonals is None:
        diagonals = max(0, round(side * side * 2.5) - 2 * side * (side - 1))
    r = rng.integers(0, side - 1, diagonals)
    c = rng.integers(0, side - 1, diagonals)
    d_tail, d_head = node[r, c], node[r + 1, c + 1]

    classes = ["residential", "primary", "trunk", "tertiary"]
    def line_class(line: np.ndarray) -> np.ndarray:
        return np.where(line % 40 == 0, 2, np.where(line % 10 == 0, 1, 0))
    edge_tail = np.concatenate([h_tail, v_tail, d_tail])
    edge_head = np.concatenate([h_head, v_head, d_head])
    edge_class = np.concatenate([line_class(h_line), line_class(v_line), np.full(diagonals, 3)])
    speeds = default_speeds()
    kmh = np.array([speeds[name] for name in classes])[edge_class]
    return from_ways(
        lon, lat,
        np.concatenate([edge_tail, edge_head]), np.concatenate([edge_head, edge_tail]),
        np.concatenate([kmh, kmh]), np.concatenate([edge_class, edge_class]), classes,
        meta={"synthetic": True, "source": f"synthetic {side}×{side} grid over Seoul's bounding box (seed {seed})"},
    )
