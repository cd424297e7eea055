"""The road network a city pack names, built into the road-graph cache when the city is loaded.

``haechi city load`` (and so ``make demo``) calls :func:`install`: the pack's ``[roads]`` entry says
where the network is (``cities.pack.roads_path``), and the cache at ``HAECHI_ROAD_GRAPH`` gets it
unless the cache already holds it, or holds another real network someone imported on purpose
(``haechi roads import``), which is kept. A synthetic grid is always replaced: real roads win.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

from haechi.cities import resolve
from haechi.cities.pack import read_manifest, roads_path

from .graph import RoadGraph, RoadImportError
from .node_link import find_pair, load_node_link
from .service import build_cache, landmarks_path

BUILT, CURRENT, KEPT, MISSING, NONE, FAILED = "built", "current", "kept", "missing", "none", "failed"


@dataclass
class Installed:
    status: str  # built | current (already there) | kept (another real graph) | missing | none | failed
    message: str
    graph: RoadGraph | None = None


def signature(source: Path) -> str:
    """Which files (size and modification time) the network was built from: a rebuild when they change."""
    return ";".join(f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in find_pair(source))


def install(pack: str, target: str | Path) -> Installed:
    """Build the pack's road network into the cache at ``target`` unless it is there already."""
    folder = resolve(pack)
    manifest = read_manifest(folder)
    spec, target = manifest.roads, Path(target)
    if spec is None:
        return Installed(NONE, f"도로망 없음 · the {pack} pack names no road network")
    source = roads_path(folder, manifest)
    if source is None:
        return Installed(MISSING, f"도로망 없음 · road network not found (looked in {', '.join(spec.search)} beside "
                                  f"{folder}): get {spec.source} and run `haechi roads import PATH`")
    # the pack's own words (note, attribution) travel in the cache: a change to them rebuilds it too
    spec_hash = hashlib.sha256(spec.model_dump_json().encode()).hexdigest()[:16]
    wanted = {"city": manifest.city.code, "signature": signature(source), "spec": spec_hash}
    held = RoadGraph.load(target) if target.exists() else None
    if held is not None and held.meta.get("pack") == wanted and landmarks_path(target).exists():
        return Installed(CURRENT, f"도로망 · road network already in {target}: {_describe(held)}", held)
    if held is not None and not held.synthetic and held.meta.get("pack", {}).get("city") != manifest.city.code:
        return Installed(KEPT, f"도로망 유지 · kept the road graph in {target} ({held.meta.get('source')}); "
                               f"for the pack's network run `haechi roads import {source}`", held)
    try:
        graph = load_node_link(source, meta={"pack": wanted, "dataset": spec.source, "licence": spec.licence,
                                             "attribution": spec.attribution,
                                             "base_date": spec.base_date, "note": spec.note,
                                             "missing_districts": spec.missing_districts})
        atomic_cache(graph, target)
    except (RoadImportError, OSError) as exc:  # the city is loaded all the same: say why there are no roads
        return Installed(FAILED, f"도로망 실패 · road network not built from {source}: {exc}")
    shipped = source.is_relative_to(folder.resolve())
    where = "the pack" if shipped else str(source)
    return Installed(BUILT, f"도로망 · road network from {where} → {target}: {_describe(graph)}", graph)


def atomic_cache(graph: RoadGraph, target: Path) -> None:
    """Write the cache beside ``target`` and move it in whole: a server reading it never sees half a file."""
    partial = target.with_name(f".{target.stem}.{os.getpid()}.npz")
    build_cache(graph, partial)
    # the graph first: a reader that finds it newer than the old landmarks recomputes them
    os.replace(partial, target)
    os.replace(landmarks_path(partial), landmarks_path(target))


def _describe(graph: RoadGraph) -> str:
    note = graph.meta.get("note")
    return f"{graph.node_count:,} nodes, {graph.arc_count:,} links" + (f" — {note}" if note else "")
