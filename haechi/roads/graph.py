"""The road graph: nodes with positions, directed arcs with travel seconds, saved as compact arrays.

A graph is plain numpy arrays (node lon/lat, arc tail/head/seconds/metres/class) so that it saves
to one ``.npz`` file, loads in milliseconds, and feeds SciPy's compiled graph routines directly.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from scipy.sparse import csr_matrix
from scipy.spatial import cKDTree

EARTH_RADIUS_M = 6_371_008.8  # IUGG mean Earth radius
SPEEDS_CSV = Path(__file__).with_name("data") / "speeds.csv"


class RoadImportError(ValueError):
    """The file holds no usable roads, or is not a road file we read."""


@cache
def default_speeds() -> dict[str, float]:
    """km/h per OSM ``highway`` class, from ``data/speeds.csv`` (each row names its source)."""
    with open(SPEEDS_CSV, newline="", encoding="utf-8") as f:
        return {row["highway"]: float(row["speed_kmh"]) for row in csv.DictReader(f)}


def metres_between(lon1: np.ndarray, lat1: np.ndarray, lon2: np.ndarray, lat2: np.ndarray) -> np.ndarray:
    """Great-circle (haversine) distances in metres, vectorised."""
    p1, p2 = np.radians(lat1), np.radians(lat2)
    dp, dl = p2 - p1, np.radians(np.asarray(lon2) - np.asarray(lon1))
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_M * np.arcsin(np.sqrt(a))


@dataclass
class RoadGraph:
    """Nodes (lon, lat) and directed arcs (tail → head) with travel seconds and length."""

    lon: np.ndarray  # float64[n]
    lat: np.ndarray  # float64[n]
    tail: np.ndarray  # int32[m]
    head: np.ndarray  # int32[m]
    seconds: np.ndarray  # float64[m], free-flow travel time
    metres: np.ndarray  # float64[m]
    road_class: np.ndarray  # int16[m], index into ``classes``
    classes: list[str]
    meta: dict[str, Any] = field(default_factory=dict)  # source, synthetic flag, built_at …
    lanes: np.ndarray | None = None  # int8[m] lanes per arc where the source says (node-link), else None

    @property
    def node_count(self) -> int:
        return len(self.lon)

    @property
    def arc_count(self) -> int:
        return len(self.tail)

    @property
    def synthetic(self) -> bool:
        return bool(self.meta.get("synthetic"))

    @cached_property
    def _tree(self) -> cKDTree:
        return cKDTree(self._planar(self.lon, self.lat))

    def _planar(self, lon: Any, lat: Any) -> np.ndarray:
        """Equirectangular metres around the graph's mean latitude: fine for snapping within a city."""
        scale = np.cos(np.radians(float(np.mean(self.lat)))) if len(self.lat) else 1.0
        return np.column_stack([np.asarray(lon, float) * scale, np.asarray(lat, float)]) * 111_195.0

    def nearest_nodes(self, points: list[tuple[float, float]]) -> tuple[np.ndarray, np.ndarray]:
        """The node nearest each (lon, lat) and its distance in metres."""
        xy = np.asarray(points, float).reshape(-1, 2)
        metres, nodes = self._tree.query(self._planar(xy[:, 0], xy[:, 1]))
        return np.asarray(nodes, np.int64), np.asarray(metres)

    def matrix(self, weights: np.ndarray | None = None, *, reverse: bool = False) -> csr_matrix:
        """Sparse adjacency with ``weights`` (default free-flow seconds); arcs weighted inf are left out.

        Parallel arcs keep the fastest (a CSR build would sum them), so results equal a multigraph's.
        The arc order is sorted once per graph: a new weighting (a closure) costs one gather.
        """
        w = self.seconds if weights is None else np.asarray(weights, float)
        order, rows, cols, starts = self._reverse_layout if reverse else self._forward_layout
        n = self.node_count
        if len(order) == 0:
            return csr_matrix((n, n))
        best = np.minimum.reduceat(w[order], starts)
        keep = np.isfinite(best)
        rows, cols = rows[keep], cols[keep]
        # csgraph reads an explicit 0 as "no edge": a zero-second arc (duplicate node) gets a tiny weight.
        best = np.maximum(best[keep], 1e-9)
        indptr = np.zeros(n + 1, np.int64)
        np.cumsum(np.bincount(rows, minlength=n), out=indptr[1:])
        return csr_matrix((best, cols, indptr), shape=(n, n))

    def _layout(self, rows: np.ndarray, cols: np.ndarray) -> tuple[np.ndarray, ...]:
        """Arcs sorted by (row, col), with the distinct (row, col) pairs and where each group starts."""
        order = np.lexsort((cols, rows))
        r, c = rows[order], cols[order]
        starts = np.flatnonzero(np.r_[True, (r[1:] != r[:-1]) | (c[1:] != c[:-1])]) if len(r) else np.array([], int)
        return order, r[starts], c[starts], starts

    @cached_property
    def _forward_layout(self) -> tuple[np.ndarray, ...]:
        return self._layout(self.tail, self.head)

    @cached_property
    def _reverse_layout(self) -> tuple[np.ndarray, ...]:
        return self._layout(self.head, self.tail)

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "wb") as f:
            np.savez_compressed(
                f, lon=self.lon, lat=self.lat, tail=self.tail, head=self.head, seconds=self.seconds,
                metres=self.metres, road_class=self.road_class,
                classes=np.array(self.classes), meta=np.array(json.dumps(self.meta, ensure_ascii=False)),
                **({} if self.lanes is None else {"lanes": self.lanes}),
            )
        return path

    @classmethod
    def load(cls, path: str | Path) -> RoadGraph:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                lon=z["lon"], lat=z["lat"], tail=z["tail"], head=z["head"], seconds=z["seconds"],
                metres=z["metres"], road_class=z["road_class"], classes=[str(c) for c in z["classes"]],
                meta=json.loads(str(z["meta"])), lanes=z["lanes"] if "lanes" in z.files else None,
            )


def from_ways(
    lon: np.ndarray, lat: np.ndarray, tail: np.ndarray, head: np.ndarray,
    speed_kmh: np.ndarray, road_class: np.ndarray, classes: list[str], meta: dict[str, Any],
) -> RoadGraph:
    """A graph from arcs and their speeds: lengths by haversine, seconds = length / speed."""
    tail, head = np.asarray(tail, np.int32), np.asarray(head, np.int32)
    metres = metres_between(lon[tail], lat[tail], lon[head], lat[head])
    seconds = metres / (np.asarray(speed_kmh, float) / 3.6)
    return RoadGraph(
        lon=np.asarray(lon, float), lat=np.asarray(lat, float), tail=tail, head=head, seconds=seconds,
        metres=metres, road_class=np.asarray(road_class, np.int16), classes=list(classes), meta=meta,
    )
