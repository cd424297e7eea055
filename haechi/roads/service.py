"""The loaded road network as the rest of Haechi sees it: graph + current hazards, and travel times.

The graph comes from the cache file ``settings.road_graph`` (built by ``haechi roads import FILE``
or, for demos, ``haechi roads generate``) and is kept in memory until the file changes. Hazard
areas are re-read from the DB whenever their signature changes (see ``hazards.signature``).
"""

from __future__ import annotations

import threading
import tomllib
from dataclasses import dataclass, field
from functools import cache, cached_property
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import SQLAlchemyError

from haechi.core.errors import Conflict, InvalidInput
from haechi.core.settings import Settings, get_settings

from . import hazards
from .graph import RoadGraph
from .router import Landmarks, Router, choose_landmarks

LonLat = tuple[float, float]
ROUTING_TOML = Path(__file__).with_name("data") / "routing.toml"
_lock = threading.Lock()


class NoRoadGraph(Conflict):
    """A 409, not a 503: the server is well, the city's set-up lacks a step the answer names."""

    title = "No road graph"

    def __init__(self, path: str | Path) -> None:
        super().__init__(
            f"No road graph is loaded ({path} not found). Run `haechi city load seoul` (the pack's road "
            "network) or `haechi roads import FILE` with an OpenStreetMap extract (.osm/.osm.pbf), GraphML "
            "or a node-link folder; for a demo, `haechi roads generate` builds a synthetic grid. "
            "도로망이 없습니다: `haechi roads import FILE`을 실행하세요."
        )


@cache
def routing_rules() -> dict[str, Any]:
    with open(ROUTING_TOML, "rb") as f:
        return tomllib.load(f)


def landmarks_path(graph_path: Path) -> Path:
    return graph_path.with_name(graph_path.stem + ".landmarks.npz")


def save_landmarks(landmarks: Landmarks, path: Path) -> None:
    with open(path, "wb") as f:
        np.savez(f, to_nodes=landmarks.to_nodes, from_nodes=landmarks.from_nodes)


def build_cache(graph: RoadGraph, path: str | Path) -> Path:
    """Write the graph and its landmark distances (float64: bounds must stay exact) next to it."""
    path = graph.save(path)
    save_landmarks(choose_landmarks(graph), landmarks_path(path))
    return path


_graphs: dict[str, tuple[float, RoadGraph, Landmarks]] = {}


def load_graph(path: str | Path) -> tuple[RoadGraph, Landmarks]:
    """The cached graph at ``path`` and its landmarks, read again only when the file changes."""
    path = Path(path)
    if not path.exists():
        raise NoRoadGraph(path)
    mtime = path.stat().st_mtime
    with _lock:
        held = _graphs.get(str(path))
        if held and held[0] == mtime:
            return held[1], held[2]
        graph = RoadGraph.load(path)
        lm_path = landmarks_path(path)
        if lm_path.exists() and lm_path.stat().st_mtime >= mtime:
            with np.load(lm_path) as z:
                landmarks = Landmarks(z["to_nodes"], z["from_nodes"])
        else:
            landmarks = choose_landmarks(graph)
            save_landmarks(landmarks, lm_path)
        _graphs[str(path)] = (mtime, graph, landmarks)
        return graph, landmarks


@dataclass
class Network:
    """A graph under the hazards in force: strict weights (routing, coverage) and evacuation weights."""

    graph: RoadGraph
    landmarks: Landmarks
    zones: list[hazards.Zone] = field(default_factory=list)

    @cached_property
    def _weights(self) -> tuple[np.ndarray, np.ndarray]:
        return hazards.arc_weights(self.graph, self.zones)

    @property
    def seconds(self) -> np.ndarray:
        """Travel seconds per arc now: closed roads inf, slowed roads longer."""
        return self._weights[0]

    @property
    def inside(self) -> np.ndarray:
        return self._weights[1]

    @cached_property
    def real_seconds(self) -> np.ndarray:
        """Seconds as driven, closed roads at free-flow time (used only to report evacuation legs)."""
        return np.where(np.isfinite(self.seconds), self.seconds, self.graph.seconds)

    @cached_property
    def real_matrix(self):
        """Adjacency of ``real_seconds`` (to add up the legs of a chosen path)."""
        return self.graph.matrix(self.real_seconds)

    @cached_property
    def metres_matrix(self):
        return self.graph.matrix(self.graph.metres)

    @cached_property
    def evacuation_seconds(self) -> np.ndarray:
        """Weights for choosing evacuation routes: roads in hazard areas cost ``inside_penalty`` ×."""
        return np.where(self.inside, self.real_seconds * hazards.evacuation_penalty(), self.graph.seconds)

    @cached_property
    def router(self) -> Router:
        return Router(self.graph, self.seconds, self.landmarks)

    def snap(self, points: list[LonLat], field_name: str = "point") -> np.ndarray:
        """Nearest node of each point; a point off the graph is an error naming the field."""
        check_points(points, field_name)
        nodes, metres = self.graph.nearest_nodes(points)
        far = np.flatnonzero(metres > routing_rules()["max_snap_m"])
        if len(far):
            lon, lat = points[far[0]]
            raise InvalidInput(f"{lon},{lat} is {metres[far[0]]:.0f} m from the nearest road "
                               f"(more than {routing_rules()['max_snap_m']:g} m)", field=field_name)
        return nodes

    def route(self, origin: LonLat, destination: LonLat) -> dict[str, Any]:
        [a], [b] = self.snap([origin], "from"), self.snap([destination], "to")
        seconds, path = self.router.route(a, b)
        return {"seconds": seconds if np.isfinite(seconds) else None, "nodes": path}


def check_points(points: list[LonLat], field_name: str) -> None:
    for lon, lat in points:
        if not (np.isfinite(lon) and np.isfinite(lat) and -180 <= lon <= 180 and -90 <= lat <= 90):
            raise InvalidInput(f"{lon},{lat} is not a lon,lat position", field=field_name)


_networks: dict[tuple, Network] = {}


def network(conn: Connection | None, settings: Settings | None = None) -> Network:
    """The road network with the hazards in force now (none when ``conn`` is None)."""
    settings = settings or get_settings()
    graph, landmarks = load_graph(settings.road_graph)
    sig = hazards.signature(conn) if conn is not None else ((), ())
    key = (id(graph), sig)
    with _lock:
        held = _networks.get(key)
    if held is not None:
        return held
    zones = hazards.active_zones(conn) if conn is not None and any(sig) else []
    made = Network(graph, landmarks, zones)
    with _lock:
        _networks.clear()  # one hazard state at a time: the newest
        _networks[key] = made
    return made


@cache
def _engine_for(url: str) -> Engine:
    return create_engine(url)


def _network_for(source: Any) -> Network | None:
    if isinstance(source, Network):
        return source
    if isinstance(source, RoadGraph):
        return Network(source, choose_landmarks(source))
    if isinstance(source, Router):
        return Network(source.graph, source.landmarks)
    settings = source if isinstance(source, Settings) else get_settings()
    if not Path(settings.road_graph).exists():
        return None
    engine = source if isinstance(source, Engine) else _engine_for(settings.database_url)
    try:
        with engine.connect() as conn:
            return network(conn, settings)
    except SQLAlchemyError:  # a DB without the roads tables yet: route without hazards
        return network(None, settings)


def travel_times(settings_or_graph: Any, origins: list[LonLat], destination: LonLat) -> list[float | None]:
    """Seconds by road from each origin to ``destination`` under the hazards in force.

    ``settings_or_graph`` may be Settings, an Engine (hazards read from it), a RoadGraph, a Router
    or a Network. None for an origin that cannot reach the destination or is off the graph, and for
    every origin when no road graph is loaded.
    """
    net = _network_for(settings_or_graph)
    if net is None or not origins:
        return [None for _ in origins]
    nodes, metres = net.graph.nearest_nodes([*origins, destination])
    target, off = nodes[-1], metres > routing_rules()["max_snap_m"]
    if off[-1]:
        return [None for _ in origins]
    times: list[float | None] = []
    for node, far in zip(nodes[:-1], off[:-1], strict=True):
        seconds = np.inf if far else net.router.seconds(node, target)
        times.append(float(seconds) if np.isfinite(seconds) else None)
    return times
