"""The road graph as a light map layer: the major roads, merged into long lines and simplified.

The situation room draws it under the districts (no tile server). A link and its reverse are one
line; consecutive links of one rank are merged, then simplified, so Seoul's arterial network is a
few hundred kilobytes however many links it has. Any graph works: node-link ranks are their own
codes, OpenStreetMap classes map to a rank through ``data/road_ranks.csv``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import shapely
from shapely.geometry import mapping

from .graph import RoadGraph
from .node_link import rank_of, road_ranks

#: The arterial network: expressways, urban expressways, national and metropolitan roads (101–104).
#: Below them (105–108) are the local streets, 15,000 of Seoul's 20,000 links: clutter at city zoom.
MAJOR_MAX_RANK = max(code for code, rank in road_ranks().items() if rank.major)
SIMPLIFY_DEG = 0.0001  # ~10 m: invisible on a city map, halves the points of curved roads
DECIMALS = 5  # ~1 m

_layers: dict[tuple[int, int], list[dict[str, Any]]] = {}


def road_features(graph: RoadGraph, max_rank: int = MAJOR_MAX_RANK) -> list[dict[str, Any]]:
    """One GeoJSON MultiLineString per road rank up to ``max_rank`` (most important first)."""
    key = (id(graph), max_rank)
    if key not in _layers:
        _layers.clear()  # one graph at a time: the one in use
        _layers[key] = _build(graph, max_rank)
    return _layers[key]


def _build(graph: RoadGraph, max_rank: int) -> list[dict[str, Any]]:
    ranks = np.array([rank_of(c) for c in graph.classes], np.int64)[graph.road_class]
    keep = ranks <= max_rank
    a, b = np.minimum(graph.tail, graph.head)[keep], np.maximum(graph.tail, graph.head)[keep]
    r = ranks[keep]
    order = np.lexsort((r, b, a))  # per node pair, its most important rank first
    a, b, r = a[order], b[order], r[order]
    first = np.r_[True, (a[1:] != a[:-1]) | (b[1:] != b[:-1])] if len(a) else np.array([], bool)
    a, b, r = a[first], b[first], r[first]
    names = road_ranks()
    features = []
    for rank in sorted(set(r.tolist())):
        mine = r == rank
        segments = np.stack([np.column_stack([graph.lon[a[mine]], graph.lat[a[mine]]]),
                             np.column_stack([graph.lon[b[mine]], graph.lat[b[mine]]])], axis=1)
        lines = shapely.line_merge(shapely.multilinestrings(shapely.linestrings(segments)))
        lines = shapely.set_precision(shapely.simplify(lines, SIMPLIFY_DEG), 10.0 ** -DECIMALS)
        info = names.get(rank)
        features.append({"type": "Feature", "geometry": mapping(lines), "properties": {
            "layer": "road", "rank": rank, "name_ko": info.name_ko if info else None,
            "name_en": info.name_en if info else None, "links": int(mine.sum())}})
    return features
