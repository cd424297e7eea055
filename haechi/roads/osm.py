"""Build a road graph from an OpenStreetMap extract (XML ``.osm`` or ``.osm.pbf``) or GraphML.

OSM is read with pyosmium (libosmium's bindings), which resolves way node locations itself.
Every drivable ``highway`` way in ``data/speeds.csv`` becomes arcs between consecutive nodes;
``oneway`` (yes/1/true/-1, roundabouts and motorways by default) decides the directions; the
speed is the way's ``maxspeed`` when it is a number (km/h, or mph), else the class default.
"""

from __future__ import annotations

import itertools
import re
from pathlib import Path
from typing import Any

import numpy as np

from .graph import RoadGraph, RoadImportError, default_speeds, from_ways

ONEWAY_YES = {"yes", "1", "true"}
ONEWAY_IMPLIED = {"motorway", "motorway_link"}  # OSM wiki Key:oneway: implied on motorways


def parse_maxspeed(value: str | None) -> float | None:
    """km/h from an OSM ``maxspeed`` ("50", "50 km/h", "30 mph"); None for zone codes like "KR:urban"."""
    if not value:
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*(km/h|kmh|kph|mph)?\s*", value.split(";")[0])
    if not match:
        return None
    speed = float(match.group(1))
    return speed * 1.609344 if match.group(2) == "mph" else speed or None


def direction(tags: dict[str, str], highway: str) -> tuple[bool, bool]:
    """(forward, backward) travel allowed along the way's node order."""
    oneway = tags.get("oneway", "").lower()
    if oneway == "-1":
        return False, True
    if oneway == "no":
        return True, True
    if oneway in ONEWAY_YES or tags.get("junction") in ("roundabout", "circular") or highway in ONEWAY_IMPLIED:
        return True, False
    return True, True


def load_osm(path: str | Path) -> RoadGraph:
    import osmium  # imported here: only road imports need libosmium loaded

    speeds = default_speeds()
    classes = list(speeds)
    node_index: dict[int, int] = {}
    lon: list[float] = []
    lat: list[float] = []
    tails: list[int] = []
    heads: list[int] = []
    kmh: list[float] = []
    klass: list[int] = []

    def index(ref: int, location: Any) -> int:
        if ref not in node_index:
            node_index[ref] = len(lon)
            lon.append(location.lon)
            lat.append(location.lat)
        return node_index[ref]

    processor = osmium.FileProcessor(str(path)).with_locations().with_filter(osmium.filter.KeyFilter("highway"))
    for way in processor:
        if not way.is_way():
            continue
        tags = dict(way.tags)
        highway = tags.get("highway", "")
        if highway not in speeds or tags.get("access") in ("no", "private") or tags.get("area") == "yes":
            continue
        nodes = [index(n.ref, n.location) for n in way.nodes if n.location.valid()]
        forward, backward = direction(tags, highway)
        speed = parse_maxspeed(tags.get("maxspeed")) or speeds[highway]
        for a, b in itertools.pairwise(nodes):
            if a == b:
                continue
            for tail, head, allowed in ((a, b, forward), (b, a, backward)):
                if allowed:
                    tails.append(tail)
                    heads.append(head)
                    kmh.append(speed)
                    klass.append(classes.index(highway))
    if not tails:
        raise RoadImportError(f"{Path(path).name}: no drivable highway ways found")
    return from_ways(
        np.array(lon), np.array(lat), np.array(tails), np.array(heads), np.array(kmh), np.array(klass),
        classes, meta={"synthetic": False, "source": f"OpenStreetMap extract {Path(path).name}"},
    )


def load_graphml(path: str | Path) -> RoadGraph:
    """A GraphML road graph as osmnx writes it: nodes with x/y, edges with highway/maxspeed/length."""
    import networkx as nx

    source = nx.read_graphml(path)
    speeds = default_speeds()
    classes = list(speeds)
    ids = {node: i for i, node in enumerate(source.nodes)}
    try:
        lon = np.array([float(data["x"]) for _, data in source.nodes(data=True)])
        lat = np.array([float(data["y"]) for _, data in source.nodes(data=True)])
    except KeyError as missing:
        raise RoadImportError(f"{Path(path).name}: GraphML nodes need x (lon) and y (lat), missing {missing}") from None
    tails, heads, kmh, klass = [], [], [], []
    for u, v, data in source.edges(data=True):
        highway = str(data.get("highway", "road")).strip("[]'\" ").split("'")[0]
        highway = highway if highway in speeds else "road"
        for tail, head in [(u, v)] if source.is_directed() else [(u, v), (v, u)]:
            tails.append(ids[tail])
            heads.append(ids[head])
            kmh.append(parse_maxspeed(str(data.get("maxspeed", ""))) or speeds[highway])
            klass.append(classes.index(highway))
    if not tails:
        raise RoadImportError(f"{Path(path).name}: no edges")
    return from_ways(lon, lat, np.array(tails), np.array(heads), np.array(kmh), np.array(klass), classes,
                     meta={"synthetic": False, "source": f"GraphML {Path(path).name}"})


def load_roads(path: str | Path, crs: str | None = None) -> RoadGraph:
    """Whichever reader the path calls for: OSM, GraphML, or the Korean standard node-link (a folder
    or its MOCT_NODE/MOCT_LINK .shp/.csv; ``crs`` for projected coordinates without a .prj)."""
    from .node_link import load_node_link  # only node-link imports need pyshp and pyproj

    name = Path(path).name.lower()
    if name.endswith(".graphml"):
        return load_graphml(path)
    if name.endswith((".osm", ".osm.pbf", ".pbf", ".osm.xml", ".osm.bz2", ".osm.gz")):
        return load_osm(path)
    if Path(path).is_dir() or (name.endswith((".shp", ".csv", ".csv.gz")) and ("node" in name or "link" in name)):
        return load_node_link(path, crs)
    raise RoadImportError(f"{Path(path).name}: expected an OpenStreetMap .osm/.osm.pbf file, a .graphml file, or "
                          "a standard node-link folder (MOCT_NODE + MOCT_LINK as .shp or .csv)")
