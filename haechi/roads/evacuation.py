"""Evacuation: from any point to the nearest shelter that still has room, around hazard areas.

One multi-source Dijkstra on the reversed graph, from every open shelter at once, gives each node
its nearest shelter and the next node toward it: together the shelters' evacuation trees (a
shortest-path forest). Shelters inside a hazard area, full ones and ones without a published
capacity are left out. Loads are kept in ``shelter_loads`` and taken by a conditional UPDATE, so
two assignments at once never share a shelter's last place; when a shelter fills, the trees are
recomputed without it, so later evacuees spread to the next nearest.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import shapely
from scipy.sparse.csgraph import dijkstra
from sqlalchemy import Connection, select, update

from haechi.core.clock import utcnow
from haechi.core.errors import InvalidInput, NotFound
from haechi.store import places
from haechi.store.schema import shelter_loads
from haechi.store.schema import shelters as shelter_details
from haechi.store.sql import insert_new

from .service import LonLat, Network


@dataclass
class Shelter:
    place_id: int
    name_ko: str
    name_en: str | None
    lon: float
    lat: float
    capacity: int
    evacuees: int

    @property
    def room(self) -> int:
        return max(0, self.capacity - self.evacuees)


def load_shelters(conn: Connection) -> list[Shelter]:
    """Shelters with a position and a published capacity, with the evacuees already sent there."""
    loads = dict(conn.execute(select(shelter_loads.c.place_id, shelter_loads.c.evacuees)).all())
    return [
        Shelter(p["id"], p["name_ko"], p.get("name_en"), p["lon"], p["lat"], int(p["capacity"]),
                int(loads.get(p["id"], 0)))
        for p in places.list_places(conn, "shelter")
        if p.get("lon") is not None and p.get("lat") is not None and p.get("capacity")
    ]


@dataclass
class Trees:
    """Every node's nearest open shelter (index into ``shelters``, -1 if none) and next hop to it."""

    shelters: list[Shelter]
    cost: np.ndarray  # chosen-route cost (hazard-area roads penalised)
    owner: np.ndarray
    next_hop: np.ndarray


def open_shelters(net: Network, shelters: list[Shelter]) -> list[Shelter]:
    """Those with room, outside every hazard area."""
    found = [s for s in shelters if s.room > 0]
    for zone in net.zones:
        found = [s for s in found if not zone.geometry.covers(shapely.Point(s.lon, s.lat))]
    return found


def evacuation_trees(net: Network, shelters: list[Shelter]) -> Trees:
    usable = open_shelters(net, shelters)
    if not usable:
        n = net.graph.node_count
        return Trees([], np.full(n, np.inf), np.full(n, -1), np.full(n, -9999))
    nodes, _ = net.graph.nearest_nodes([(s.lon, s.lat) for s in usable])
    reverse = net.graph.matrix(net.evacuation_seconds, reverse=True)
    cost, next_hop, root = dijkstra(reverse, indices=nodes, min_only=True, return_predecessors=True)
    index_of_node = {int(node): i for i, node in reversed(list(enumerate(nodes)))}
    lookup = np.full(net.graph.node_count, -1)
    for node, i in index_of_node.items():
        lookup[node] = i
    owner = np.where(root >= 0, lookup[np.maximum(root, 0)], -1)
    return Trees(usable, cost, owner, next_hop)


def path_from(trees: Trees, node: int) -> list[int]:
    path = [int(node)]
    while trees.next_hop[path[-1]] >= 0:
        path.append(int(trees.next_hop[path[-1]]))
    return path


def leg_seconds(net: Network, path: list[int]) -> float:
    """Real travel seconds along a node path (fastest parallel arc of each step)."""
    if len(path) < 2:
        return 0.0
    return float(np.asarray(net.real_matrix[path[:-1], path[1:]]).ravel().sum())


def evacuate(net: Network, shelters: list[Shelter], at: LonLat) -> dict[str, Any]:
    """The route from ``at`` to the nearest shelter with room (no writes)."""
    [node] = net.snap([at], "at")
    trees = evacuation_trees(net, shelters)
    return _answer(net, trees, int(node))


def _answer(net: Network, trees: Trees, node: int) -> dict[str, Any]:
    owner = int(trees.owner[node])
    if owner < 0:
        raise NotFound("no shelter with room can be reached from here avoiding hazard areas")
    path = path_from(trees, node)
    shelter = trees.shelters[owner]
    return {"shelter": shelter, "seconds": leg_seconds(net, path), "nodes": path,
            "through_hazard": bool(np.isin(path, _inside_nodes(net)).any())}


def _inside_nodes(net: Network) -> np.ndarray:
    return np.unique(np.concatenate([net.graph.tail[net.inside], net.graph.head[net.inside]]))


def assign(conn: Connection, net: Network, at: LonLat, people: int) -> list[dict[str, Any]]:
    """Send ``people`` from ``at``: fill the nearest shelter with room, the rest to the next, and record loads.

    Each shelter's places are taken by ``take_places`` (one conditional UPDATE). When another
    assignment took them first, the shelter's load is read again and the trees recomputed: the
    rest go to whatever room is left there, or to the next nearest shelter.
    """
    if not 1 <= people <= 100_000:
        raise InvalidInput("people must be between 1 and 100000", field="people")
    [node] = net.snap([at], "at")
    shelters = load_shelters(conn)
    sent: list[dict[str, Any]] = []
    while people > 0:
        trees = evacuation_trees(net, shelters)
        if trees.owner[node] < 0:
            if not sent:
                raise NotFound("no shelter with room can be reached from here avoiding hazard areas")
            sent.append({"shelter": None, "people": people, "reason": "no shelter with room reachable"})
            break
        leg = _answer(net, trees, int(node))
        shelter: Shelter = leg["shelter"]
        placed = min(people, shelter.room)
        if not take_places(conn, shelter.place_id, placed):
            shelter.evacuees = _load_of(conn, shelter.place_id)  # someone else was quicker
            continue
        shelter.evacuees += placed
        people -= placed
        sent.append(leg | {"people": placed})
    return sent


def take_places(conn: Connection, place_id: int, people: int) -> bool:
    """Record ``people`` more evacuees at a shelter if it still has room for them all.

    One conditional UPDATE (``evacuees + n <= capacity``), never a read then a write: of two
    assignments racing for a shelter's last places, the database lets exactly one through (on
    PostgreSQL the second waits for the first's row lock, then finds the room gone: rowcount 0).
    """
    now = utcnow()
    insert_new(conn, shelter_loads, [{"place_id": place_id, "evacuees": 0, "updated_at": now}], ["place_id"])
    load = shelter_loads.c
    capacity = select(shelter_details.c.capacity).where(shelter_details.c.place_id == load.place_id).scalar_subquery()
    taken = conn.execute(update(shelter_loads)
                         .where(load.place_id == place_id, load.evacuees + people <= capacity)
                         .values(evacuees=load.evacuees + people, updated_at=now))
    return taken.rowcount == 1


def _load_of(conn: Connection, place_id: int) -> int:
    return int(conn.execute(select(shelter_loads.c.evacuees).where(shelter_loads.c.place_id == place_id)).scalar() or 0)


def reset_loads(conn: Connection) -> int:
    return conn.execute(shelter_loads.delete()).rowcount


# ── a warned area, block by block ─────────────────────────────────────────────────────────

BLOCK_DEG = 0.004  # ~350-440 m: a city block group, the unit a plan is read in


def blocks_in(net: Network, area, people: float, block_deg: float = BLOCK_DEG) -> list[dict[str, Any]]:
    """Road nodes inside ``area`` grouped into blocks, the area's ``people`` spread evenly over its nodes."""
    g = net.graph
    w, s, e, n = area.bounds
    idx = np.flatnonzero((g.lon >= w) & (g.lon <= e) & (g.lat >= s) & (g.lat <= n))
    idx = idx[shapely.contains_xy(area, g.lon[idx], g.lat[idx])]
    if len(idx) == 0:
        return []
    cell = np.column_stack([np.floor(g.lon[idx] / block_deg), np.floor(g.lat[idx] / block_deg)]).astype(np.int64)
    keys, which = np.unique(cell, axis=0, return_inverse=True)
    per_node = people / len(idx)
    return [{"nodes": idx[which.ravel() == k], "lon": (kx + 0.5) * block_deg, "lat": (ky + 0.5) * block_deg,
             "people": round(per_node * int((which.ravel() == k).sum()))} for k, (kx, ky) in enumerate(keys)]


def plan(net: Network, shelters: list[Shelter], blocks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Each block to its nearest shelter with room, nearest blocks first; a full shelter drops out and
    the trees are recomputed, so the rest spread to the next nearest. Shelters here are copies: no writes."""
    shelters = [Shelter(**vars(s)) for s in shelters]
    trees = evacuation_trees(net, shelters)
    def start(block: dict[str, Any]) -> int:
        return int(block["nodes"][np.argmin(trees.cost[block["nodes"]])])
    order = sorted(blocks, key=lambda b: trees.cost[start(b)])
    legs = []
    for block in order:
        left = block["people"]
        while left > 0:
            node = start(block)
            if trees.owner[node] < 0:
                legs.append({"block": block, "shelter": None, "people": left, "seconds": None})
                break
            shelter = trees.shelters[trees.owner[node]]
            placed = min(left, shelter.room)
            shelter.evacuees += placed
            left -= placed
            legs.append({"block": block, "shelter": shelter, "people": placed,
                         "seconds": leg_seconds(net, path_from(trees, node))})
            if shelter.room == 0:
                trees = evacuation_trees(net, shelters)
    return legs
