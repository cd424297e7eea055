"""Korea's standard node-link road network (표준노드링크, MOLIT / ITS 국가교통정보센터) as a road graph.

The dataset is published as ``MOCT_NODE`` / ``MOCT_LINK`` shapefiles in GRS80 TM (EPSG:5186), and
is often passed around as CSV with the same columns; both are read here. Each link is **one
direction of travel** (a two-way street is two links, f→t and t→f), so one-way streets are simply
links without a reverse: every link becomes exactly one arc. A link whose ``ROAD_USE`` says it is
not in use is left out (on the Seoul cut, 440 of its 454 such links are the reverse of a link in
use: the closed direction of a one-way street). Travel speed is the link's ``MAX_SPD`` (km/h);
where that is missing or 0 the road rank's default from ``data/road_ranks.csv``, each row citing
its source. Length is the link's own ``LENGTH`` (metres along the road), not the straight line.

Only the largest strongly connected part is kept: a cut of a city leaves stubs at its edges that
can be entered and not left (or the reverse), and a point snapped onto one would get no route.
Every count dropped is kept in the graph's ``meta`` so that ``haechi roads info`` can say it.
"""

from __future__ import annotations

import csv
import gzip
import math
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
from pyproj import CRS, Transformer
from scipy.sparse import csr_matrix
from scipy.sparse.csgraph import connected_components

from .graph import RoadGraph, RoadImportError, metres_between

RANKS_CSV = Path(__file__).with_name("data") / "road_ranks.csv"
#: The standard's own coordinate system (GRS80 ellipsoid, TM central origin), assumed when a
#: shapefile has no .prj and for projected X/Y columns in CSV unless ``crs`` says otherwise.
STANDARD_CRS = "EPSG:5186"
#: ROAD_USE (도로사용여부) value of a link not open to traffic.
ROAD_USE_UNUSED = 1
#: Rank of a link whose ROAD_RANK is missing or not a code of the standard: "other road".
OTHER_RANK = 108
#: DBF text encoding of the official download (Korean public data is CP949 unless a .cpg says so).
OFFICIAL_ENCODING = "cp949"

# Column names as published, and as common extracts rename them (all compared lower-case).
NODE_ID = ("node_id", "id")
LON, LAT = ("lon", "longitude", "lng"), ("lat", "latitude")
X, Y = ("x", "x_coord", "xcoord"), ("y", "y_coord", "ycoord")
F_NODE, T_NODE = ("f_node", "source", "from_node"), ("t_node", "target", "to_node")
LENGTH = ("length", "length_m", "shape_stle", "shape_leng")


@dataclass(frozen=True)
class Rank:
    code: int
    name_ko: str
    name_en: str
    default_kmh: float
    major: bool
    osm_highway: tuple[str, ...]


@cache
def road_ranks() -> dict[int, Rank]:
    """ROAD_RANK code → its names, default speed and OSM equivalents (``data/road_ranks.csv``)."""
    with open(RANKS_CSV, newline="", encoding="utf-8") as f:
        return {int(r["rank"]): Rank(int(r["rank"]), r["name_ko"], r["name_en"], float(r["default_speed_kmh"]),
                                     r["major"] == "yes", tuple(h for h in r["osm_highway"].split(";") if h))
                for r in csv.DictReader(f)}


@dataclass
class Tables:
    """The two tables of the standard, as arrays (coordinates already in WGS84 degrees)."""

    node_id: np.ndarray  # int64
    lon: np.ndarray
    lat: np.ndarray
    f_node: np.ndarray  # int64
    t_node: np.ndarray
    length_m: np.ndarray  # nan where not given
    lanes: np.ndarray  # nan where not given
    rank: np.ndarray  # int
    max_kmh: np.ndarray  # nan or 0 where not given
    road_use: np.ndarray  # int, 0 in use
    source: str
    crs: str


# ── finding the two files ─────────────────────────────────────────────────────────────────────


#: Table file kinds, in the order looked for; .csv.gz is how a pack may ship a network compactly.
TABLE_KINDS = (".shp", ".csv", ".csv.gz")


def table_kind(path: Path) -> str | None:
    name = path.name.lower()
    return next((kind for kind in sorted(TABLE_KINDS, key=len, reverse=True) if name.endswith(kind)), None)


def find_pair(path: Path) -> tuple[Path, Path]:
    """(nodes, links) files for a folder or for either file of the pair."""
    path = Path(path)
    if path.is_dir():
        files = {p.name.lower(): p for p in path.iterdir() if p.is_file()}
        for kind in TABLE_KINDS:
            for node, link in (("moct_node", "moct_link"), ("nodes", "links"), ("node", "link")):
                if f"{node}{kind}" in files and f"{link}{kind}" in files:
                    return files[f"{node}{kind}"], files[f"{link}{kind}"]
        raise RoadImportError(f"{path}: no MOCT_NODE/MOCT_LINK (.shp or .csv) or nodes.csv/links.csv in this folder")
    name = path.name.lower()
    for mine, other in (("link", "node"), ("node", "link")):
        if mine in name and table_kind(path):
            siblings = {p.name.lower(): p for p in path.parent.iterdir()}
            for candidate in (name.replace(mine, other), name.replace(mine + "s", other + "s")):
                if candidate in siblings and candidate != name:
                    pair = (path, siblings[candidate]) if mine == "node" else (siblings[candidate], path)
                    return pair
    raise RoadImportError(f"{path.name}: expected a standard node-link folder or a MOCT_NODE/MOCT_LINK file "
                          "with its partner beside it")


# ── reading ───────────────────────────────────────────────────────────────────────────────────


def read_tables(path: str | Path, crs: str | None = None) -> Tables:
    nodes, links = find_pair(Path(path))
    if table_kind(nodes) != table_kind(links):
        raise RoadImportError(f"{nodes.name} and {links.name}: both tables must be of one kind (.shp, .csv)")
    if table_kind(nodes) == ".shp":
        node_cols, node_crs = _shapefile_nodes(nodes, crs)
        link_cols = _shapefile_links(links)
    else:
        node_cols, node_crs = _csv_nodes(nodes, crs)
        link_cols = _columns(_read_csv(links), links.name)
    return _tables(node_cols, link_cols, source=f"{nodes.parent.name}/{nodes.name}+{links.name}", crs=node_crs)


def _read_csv(path: Path) -> list[dict[str, str]]:
    """Rows with lower-case headers; UTF-8 (with or without BOM), else the official CP949."""
    opener = gzip.open if table_kind(path) == ".csv.gz" else open
    for encoding in ("utf-8-sig", OFFICIAL_ENCODING):
        try:
            with opener(path, "rt", newline="", encoding=encoding) as f:
                return [{(k or "").strip().lower(): v for k, v in row.items()} for row in csv.DictReader(f)]
        except UnicodeDecodeError:
            continue
    raise RoadImportError(f"{path.name}: neither UTF-8 nor CP949 text")


def _columns(rows: list[dict[str, Any]], name: str) -> dict[str, list[Any]]:
    if not rows:
        raise RoadImportError(f"{name}: no rows")
    return {key: [r.get(key) for r in rows] for key in rows[0]}


def _pick(columns: dict[str, list[Any]], names: tuple[str, ...], what: str, file: str,
          required: bool = True) -> list[Any] | None:
    for name in names:
        if name in columns:
            return columns[name]
    if required:
        raise RoadImportError(f"{file}: no {what} column (looked for {', '.join(n.upper() for n in names)})")
    return None


def _to_wgs84(x: np.ndarray, y: np.ndarray, crs: str) -> tuple[np.ndarray, np.ndarray]:
    source = CRS.from_user_input(crs)
    if source.equals(CRS.from_epsg(4326)):
        return x, y
    lon, lat = Transformer.from_crs(source, CRS.from_epsg(4326), always_xy=True).transform(x, y)
    return np.asarray(lon), np.asarray(lat)


def _csv_nodes(path: Path, crs: str | None) -> tuple[dict[str, Any], str]:
    """Node columns with lon/lat in degrees: from lon/lat columns, or projected X/Y in ``crs``."""
    columns = _columns(_read_csv(path), path.name)
    lon, lat = _pick(columns, LON, "lon", path.name, False), _pick(columns, LAT, "lat", path.name, False)
    if lon is not None and lat is not None and crs is None:
        return columns | {"lon": _floats(lon, len(lon)), "lat": _floats(lat, len(lat))}, "EPSG:4326"
    x, y = _pick(columns, X, "X", path.name, False), _pick(columns, Y, "Y", path.name, False)
    if x is None or y is None:
        x, y = lon, lat
    if x is None or y is None:
        raise RoadImportError(f"{path.name}: nodes need lon/lat (WGS84) or X/Y columns")
    crs = crs or STANDARD_CRS
    lon_deg, lat_deg = _to_wgs84(_floats(x, len(x)), _floats(y, len(y)), crs)
    return columns | {"lon": lon_deg, "lat": lat_deg}, crs


def _shapefile(path: Path):
    import shapefile  # pyshp: only road imports need it

    cpg = path.with_suffix(".cpg")
    encoding = cpg.read_text().strip() if cpg.exists() else OFFICIAL_ENCODING
    try:
        return shapefile.Reader(str(path), encoding=encoding, encodingErrors="replace")
    except shapefile.ShapefileException as exc:
        raise RoadImportError(f"{path.name}: {exc}") from None


def _shapefile_crs(path: Path, crs: str | None) -> str:
    prj = path.with_suffix(".prj")
    if crs:
        return crs
    if prj.exists():
        return CRS.from_wkt(prj.read_text(errors="replace")).to_wkt()
    return STANDARD_CRS


def _shapefile_nodes(path: Path, crs: str | None) -> tuple[dict[str, Any], str]:
    with _shapefile(path) as reader:
        fields = [f[0].lower() for f in reader.fields[1:]]
        records, xs, ys = [], [], []
        for item in reader.iterShapeRecords():
            if not item.shape.points:
                continue
            x, y = item.shape.points[0][:2]
            records.append(item.record)
            xs.append(x)
            ys.append(y)
    crs = _shapefile_crs(path, crs)
    lon, lat = _to_wgs84(np.array(xs, float), np.array(ys, float), crs)
    columns = {name: [r[i] for r in records] for i, name in enumerate(fields)}
    return columns | {"lon": lon, "lat": lat}, _crs_name(crs)


def _shapefile_links(path: Path) -> dict[str, Any]:
    with _shapefile(path) as reader:
        fields = [f[0].lower() for f in reader.fields[1:]]
        records = [list(r) for r in reader.iterRecords()]
    return {name: [r[i] for r in records] for i, name in enumerate(fields)}


def _crs_name(crs: str) -> str:
    found = CRS.from_user_input(crs).to_epsg()
    return f"EPSG:{found}" if found else CRS.from_user_input(crs).name


def _floats(values: list[Any] | None, count: int, default: float = math.nan) -> np.ndarray:
    """Numbers of a column (``default`` where empty or not a number; all ``default`` without the column)."""
    out = np.full(count, default)
    for i, v in enumerate(values or []):
        try:
            out[i] = float(v) if v not in (None, "") else default
        except (TypeError, ValueError):
            pass
    return out


def _ints(values: list[Any], file: str, what: str) -> np.ndarray:
    try:
        return np.array([int(float(v)) for v in values], np.int64)
    except (TypeError, ValueError) as exc:
        raise RoadImportError(f"{file}: {what} must be whole numbers ({exc})") from None


def _tables(nodes: dict[str, Any], links: dict[str, Any], source: str, crs: str) -> Tables:
    n_file, l_file = "node table", "link table"
    f_node = _ints(_pick(links, F_NODE, "F_NODE", l_file), l_file, "F_NODE")
    count = len(f_node)

    def optional(names: tuple[str, ...], default: float = math.nan) -> np.ndarray:
        return _floats(_pick(links, names, names[0].upper(), l_file, required=False), count, default)

    return Tables(
        node_id=_ints(_pick(nodes, NODE_ID, "NODE_ID", n_file), n_file, "NODE_ID"),
        lon=np.asarray(nodes["lon"], float), lat=np.asarray(nodes["lat"], float),
        f_node=f_node, t_node=_ints(_pick(links, T_NODE, "T_NODE", l_file), l_file, "T_NODE"),
        length_m=optional(LENGTH), lanes=optional(("lanes",)),
        rank=optional(("road_rank",), OTHER_RANK).astype(np.int64), max_kmh=optional(("max_spd",)),
        road_use=optional(("road_use",), 0).astype(np.int64), source=source, crs=crs,
    )


# ── the graph ─────────────────────────────────────────────────────────────────────────────────


def build_graph(t: Tables, meta: dict[str, Any] | None = None) -> RoadGraph:
    """One arc per link in use with both ends known, on the largest strongly connected part."""
    order = np.argsort(t.node_id, kind="stable")
    ids = t.node_id[order]
    f_pos = np.clip(np.searchsorted(ids, t.f_node), 0, max(len(ids) - 1, 0))
    h_pos = np.clip(np.searchsorted(ids, t.t_node), 0, max(len(ids) - 1, 0))
    known = (len(ids) > 0) & (ids[f_pos] == t.f_node) & (ids[h_pos] == t.t_node)
    in_use = t.road_use != ROAD_USE_UNUSED
    keep = known & in_use & (t.f_node != t.t_node)
    tail, head = order[f_pos[keep]], order[h_pos[keep]]
    if not len(tail):
        raise RoadImportError(f"{t.source}: no link joins two known nodes")
    ranks = road_ranks()
    rank = np.where(np.isin(t.rank[keep], list(ranks)), t.rank[keep], OTHER_RANK)
    limit = t.max_kmh[keep]
    posted = np.isfinite(limit) & (limit > 0)
    default = np.array([ranks[int(r)].default_kmh for r in rank])
    kmh = np.where(posted, limit, default)
    metres = t.length_m[keep]
    straight = metres_between(t.lon[tail], t.lat[tail], t.lon[head], t.lat[head])
    metres = np.where(np.isfinite(metres) & (metres > 0), metres, straight)
    lanes = np.nan_to_num(t.lanes[keep], nan=0).clip(0, 127).astype(np.int8)

    part = _largest_strong_part(len(ids), tail, head)
    arcs = part[tail] & part[head]
    nodes = np.flatnonzero(part)
    renumber = np.full(len(ids), -1, np.int64)
    renumber[nodes] = np.arange(len(nodes))
    classes = [str(code) for code in sorted(ranks)]
    counts = {
        "links": len(t.f_node), "links_unknown_end": int((~known).sum()),
        "links_not_in_use": int((known & ~in_use).sum()), "links_outside_main_part": int((~arcs).sum()),
        "nodes": len(ids), "nodes_outside_main_part": int(len(ids) - len(nodes)),
        "speed_from_limit_share": round(float(posted[arcs].mean()), 4),
    }
    return RoadGraph(
        lon=t.lon[nodes].astype(float), lat=t.lat[nodes].astype(float),
        tail=renumber[tail[arcs]].astype(np.int32), head=renumber[head[arcs]].astype(np.int32),
        seconds=metres[arcs] / (kmh[arcs] / 3.6), metres=metres[arcs].astype(float),
        road_class=np.array([classes.index(str(r)) for r in rank[arcs]], np.int16), classes=classes,
        lanes=lanes[arcs],
        meta={"synthetic": False, "format": "node-link", "crs": t.crs,
              "source": f"standard node-link (표준노드링크) {t.source}", "counts": counts} | (meta or {}),
    )


def _largest_strong_part(n: int, tail: np.ndarray, head: np.ndarray) -> np.ndarray:
    adjacency = csr_matrix((np.ones(len(tail)), (tail, head)), shape=(n, n))
    _, label = connected_components(adjacency, directed=True, connection="strong")
    used = np.zeros(n, bool)
    used[tail] = used[head] = True
    sizes = np.bincount(label[used], minlength=label.max() + 1)
    return label == int(np.argmax(sizes))


def load_node_link(path: str | Path, crs: str | None = None, meta: dict[str, Any] | None = None) -> RoadGraph:
    """The road graph of a standard node-link folder or file (see the module docstring)."""
    return build_graph(read_tables(path, crs), meta)


def rank_of(name: str) -> int:
    """The road rank a graph class stands for: its own code (node-link) or the OSM class's equivalent."""
    if name.isdigit():
        return int(name)
    for rank in road_ranks().values():
        if name in rank.osm_highway:
            return rank.code
    return OTHER_RANK
