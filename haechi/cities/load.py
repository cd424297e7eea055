"""Loading a city pack into the integrated DB, in one transaction, with progress."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy import Engine

from haechi.cities.provision import provision_stations
from haechi.store import areas, places

from . import resolve
from .pack import AreaLocator, boundary_rows, place_path, place_rows, read_manifest, statistics_rows

#: progress(step description, steps done, steps in all)
Progress = Callable[[str, int, int], None]


@dataclass
class LoadReport:
    city: str
    areas: dict[str, int] = field(default_factory=dict)
    statistics: int = 0
    places: dict[str, int] = field(default_factory=dict)
    area_km2: float = 0.0
    official_area_km2: float | None = None
    datastreams_created: int = 0
    #: "kind ref" of places whose coordinates fall outside every boundary of the pack
    outside: list[str] = field(default_factory=list)
    #: place files read from outside the pack (not shipped in it: see the pack's SOURCES.md), and where from
    external: list[str] = field(default_factory=list)
    #: optional place files found nowhere: those places are not loaded
    missing: list[str] = field(default_factory=list)


def load_city(engine: Engine, pack: str, progress: Progress = lambda *_: None) -> LoadReport:
    """Read ``pack`` (a built-in name or a folder) and upsert it; loading twice changes nothing."""
    folder = resolve(pack)
    manifest = read_manifest(folder)
    steps = 3 + len(manifest.places)
    progress("boundaries", 0, steps)
    area_rows = boundary_rows(folder, manifest)
    progress("statistics", 1, steps)
    stats = statistics_rows(folder, manifest)
    locate = AreaLocator(area_rows)
    place_sets, external, missing = [], [], []
    for n, spec in enumerate(manifest.places, start=2):
        progress(f"places: {spec.kind}", n, steps)
        path = place_path(folder, spec)
        if path is None and spec.optional:
            searched = ", ".join(spec.search or [spec.label])
            missing.append(f"{spec.kind}: none of {searched} exists; source: {spec.source}")
        elif path is not None and not path.is_relative_to(folder.resolve()):
            external.append(f"{spec.kind}: {path}")
        place_sets.append(place_rows(folder, spec, locate))
    progress("writing", steps - 1, steps)
    with engine.begin() as conn:
        areas.save_areas(conn, area_rows)
        areas.save_statistics(conn, stats)
        for rows in place_sets:
            places.save_places(conn, rows)
        streams = provision_stations(conn)
        report = LoadReport(
            city=manifest.city.name_en,
            areas=areas.count_areas(conn),
            statistics=len(stats),
            places=places.count_places(conn),
            area_km2=sum(r["area_km2"] for r in area_rows if r["level"] == "district"),
            official_area_km2=manifest.city.official_area_km2,
            datastreams_created=streams,
            outside=outside_boundaries(place_sets),
            external=external,
            missing=missing,
        )
    progress("done", steps, steps)
    return report


def outside_boundaries(place_sets: list[list[dict]]) -> list[str]:
    """Places with coordinates that no area contains: kept, but worth a look (a typo, or a neighbour city)."""
    return [f"{p['kind']} {p['ref']}" for rows in place_sets for p in rows
            if p["lon"] is not None and p["area_code"] is None]
