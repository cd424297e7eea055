"""Indicator values from the integrated DB: statistics, places and finished simulations.

Nothing is invented: a value the DB does not hold stays NaN. Each indicator carries a note saying
where its values came from, or why it has none; dongs that take their district's value for an
intensive indicator (a share or a density) are flagged.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import shapely
from shapely import STRtree, points
from sqlalchemy import Connection, Text, cast, select

from haechi.core.errors import InvalidInput
from haechi.store.schema import admin_areas, area_statistics, places, simulations

from .index import Indicator, Method

EARTH_RADIUS_KM = 6371.0088
INTENSIVE = {"statistic", "ratio", "density", "simulation"}  # may be inherited from the district


@dataclass
class Areas:
    codes: list[str]
    names: list[str]
    parents: list[str | None]
    area_km2: np.ndarray
    lon: np.ndarray  # representative point
    lat: np.ndarray
    geometries: list[Any]  # shapely geometries (None where an area has none)


@dataclass
class RawTable:
    level: str
    areas: Areas
    values: np.ndarray  # [A, I]
    from_district: np.ndarray  # [A, I] bool
    notes: dict[str, str] = field(default_factory=dict)
    simulations: dict[str, int] = field(default_factory=dict)  # kind -> id used


@dataclass
class _Context:
    stats: dict[str, dict[str, float]]
    place_rows: list[Any]
    sims: dict[str, dict[str, Any]]


def load_areas(conn: Connection, level: str) -> Areas:
    """Areas of ``level`` with shapes parsed in C (``shapely.from_geojson``), not dict by dict."""
    a = admin_areas.c
    rows = conn.execute(select(a.code, a.name_ko, a.parent_code, a.area_km2, cast(a.geometry, Text))
                        .where(a.level == level).order_by(a.code)).all()
    if not rows:
        raise InvalidInput(f"no administrative areas of level {level!r}; load a city pack first", field="level")
    texts = [r[4] if r[4] and r[4] != "null" else None for r in rows]
    shapes = shapely.from_geojson(texts)  # None stays None
    reps = shapely.point_on_surface(shapes)
    return Areas(
        codes=[r.code for r in rows], names=[r.name_ko for r in rows], parents=[r.parent_code for r in rows],
        area_km2=np.array([r.area_km2 or np.nan for r in rows], dtype=float),
        lon=shapely.get_x(reps), lat=shapely.get_y(reps), geometries=list(shapes),
    )


def gather(conn: Connection, method: Method, level: str, simulation_ids: dict[str, int] | None = None) -> RawTable:
    """Raw values [areas × indicators] for ``level`` ('district' or 'dong')."""
    if level not in ("district", "dong"):
        raise InvalidInput("level must be 'district' or 'dong'", field="level")
    areas = load_areas(conn, level)
    ctx = _Context(_statistics(conn), _places(conn), _simulations(conn, method, simulation_ids or {}))
    notes: dict[str, str] = {}
    values = np.column_stack([_values(ctx, i, areas, notes) for i in method.indicators])
    inherited = np.zeros_like(values, dtype=bool)
    if level == "dong" and method.dong_fallback == "district":
        _fill_from_districts(conn, ctx, method, areas, values, inherited, notes)
    for j, indicator in enumerate(method.indicators):
        column = values[:, j]
        if np.isnan(column).all():
            notes.setdefault(indicator.name, "no data")
        elif inherited[:, j].any():
            notes[indicator.name] = (notes.get(indicator.name, "") +
                                     f"; {int(inherited[:, j].sum())} dongs take their district's value").lstrip("; ")
    return RawTable(level, areas, values, inherited, notes, {k: v["id"] for k, v in ctx.sims.items()})


def _fill_from_districts(conn: Connection, ctx: _Context, method: Method, areas: Areas, values: np.ndarray,
                         inherited: np.ndarray, notes: dict[str, str]) -> None:
    districts = load_areas(conn, "district")
    index = {c: i for i, c in enumerate(districts.codes)}
    parent = np.array([index.get(p or "", -1) for p in areas.parents])
    scratch: dict[str, str] = {}
    for j, indicator in enumerate(method.indicators):
        if indicator.source["kind"] not in INTENSIVE:
            continue
        upper = _values(ctx, indicator, districts, scratch)
        take = np.isnan(values[:, j]) & (parent >= 0)
        take[take] = ~np.isnan(upper[parent[take]])
        values[take, j] = upper[parent[take]]
        inherited[take, j] = True
        if take.any() and indicator.source["kind"] != "simulation":
            notes.pop(indicator.name, None)  # "not loaded for dongs" no longer holds; gather adds the count


# ── sources ─────────────────────────────────────────────────────────────────────────────


def _statistics(conn: Connection) -> dict[str, dict[str, float]]:
    """Latest year of every indicator per area: {area_code: {indicator: value}}."""
    s = area_statistics.c
    found: dict[str, dict[str, float]] = {}
    for code, indicator, value in conn.execute(select(s.area_code, s.indicator, s.value).order_by(s.year)):
        found.setdefault(code, {})[indicator] = value
    return found


def _places(conn: Connection) -> list[Any]:
    p = places.c
    return conn.execute(select(p.kind, p.area_code, p.lon, p.lat)).all()


def _simulations(conn: Connection, method: Method, chosen: dict[str, int]) -> dict[str, dict[str, Any]]:
    """The finished simulation each 'simulation' indicator reads: the chosen id, else the latest done."""
    s = simulations.c
    found = {}
    for kind in {i.source["simulation"] for i in method.indicators if i.source["kind"] == "simulation"}:
        query = select(s.id, s.kind, s.status, s.result).where(s.kind == kind)
        if kind in chosen:
            row = conn.execute(query.where(s.id == chosen[kind])).first()
            if row is None or row.status != "done":
                raise InvalidInput(f"simulation {chosen[kind]} is not a finished {kind} simulation", field=kind)
        else:
            row = conn.execute(query.where(s.status == "done").order_by(s.id.desc()).limit(1)).first()
        if row is not None:
            found[kind] = {"id": row.id, "areas": {a["code"]: a for a in (row.result or {}).get("areas", [])}}
    return found


def _values(ctx: _Context, indicator: Indicator, areas: Areas, notes: dict[str, str]) -> np.ndarray:
    src = indicator.source
    kind = src["kind"]
    if kind == "statistic":
        return _stat(ctx, areas, src["indicator"], notes, indicator.name)
    if kind == "ratio":
        num = _stat(ctx, areas, src["numerator"], notes, indicator.name)
        den = _stat(ctx, areas, src["denominator"], notes, indicator.name)
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.where(den > 0, num / den, np.nan)
    if kind == "density":
        num = _stat(ctx, areas, src["numerator"], notes, indicator.name)
        return np.where(areas.area_km2 > 0, num / areas.area_km2, np.nan)
    if kind in ("places_density", "places_per_population"):
        counts = _place_counts(ctx, areas, src["places"])
        if counts is None:
            notes[indicator.name] = f"no places of kind {', '.join(src['places'])} are loaded"
            return np.full(len(areas.codes), np.nan)
        if kind == "places_density":
            return np.where(areas.area_km2 > 0, counts / areas.area_km2, np.nan)
        population = _stat(ctx, areas, "population", notes, indicator.name)
        return np.where(population > 0, counts / population * float(src.get("per", 1)), np.nan)
    if kind == "nearest_km":
        return _nearest_km(ctx, areas, src["places"], notes, indicator.name)
    return _simulation_values(ctx, areas, src, notes, indicator.name)


def _stat(ctx: _Context, areas: Areas, name: str, notes: dict[str, str], indicator: str) -> np.ndarray:
    values = np.array([ctx.stats.get(c, {}).get(name, np.nan) for c in areas.codes], dtype=float)
    if np.isnan(values).all():
        notes.setdefault(indicator, f"statistic {name!r} is not loaded for these areas")
    return values


def _place_counts(ctx: _Context, areas: Areas, kinds: list[str]) -> np.ndarray | None:
    """Places of ``kinds`` per area: by point in polygon, else by the place's own area code; None if none exist."""
    rows = [r for r in ctx.place_rows if r.kind in kinds]
    if not rows:
        return None
    counts = np.zeros(len(areas.codes))
    located = [r for r in rows if r.lon is not None and r.lat is not None]
    shapes = areas.geometries
    valid = [i for i, s in enumerate(shapes) if s is not None]
    if located and valid:
        tree = STRtree([shapes[i] for i in valid])
        pts = points([r.lon for r in located], [r.lat for r in located])
        hit_point, hit_area = tree.query(pts, predicate="within")
        first = {}
        for p, a in zip(hit_point, hit_area, strict=True):
            first.setdefault(int(p), valid[int(a)])
        for a in first.values():
            counts[a] += 1
    index = {c: i for i, c in enumerate(areas.codes)}
    for r in rows:
        if (r.lon is None or r.lat is None) and r.area_code:
            for length in (len(r.area_code), 8, 5):
                i = index.get(r.area_code[:length])
                if i is not None:
                    counts[i] += 1
                    break
    return counts


def _nearest_km(ctx: _Context, areas: Areas, kinds: list[str], notes: dict[str, str], indicator: str) -> np.ndarray:
    rows = [r for r in ctx.place_rows if r.kind in kinds and r.lon is not None and r.lat is not None]
    if not rows:
        notes[indicator] = f"no located places of kind {', '.join(kinds)} are loaded"
        return np.full(len(areas.codes), np.nan)
    lon, lat = np.radians([r.lon for r in rows]), np.radians([r.lat for r in rows])
    alon, alat = np.radians(areas.lon)[:, None], np.radians(areas.lat)[:, None]
    a = np.sin((lat - alat) / 2) ** 2 + np.cos(alat) * np.cos(lat) * np.sin((lon - alon) / 2) ** 2
    return (2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))).min(axis=1)


def _simulation_values(ctx: _Context, areas: Areas, src: dict[str, Any], notes: dict[str, str],
                       indicator: str) -> np.ndarray:
    sim = ctx.sims.get(src["simulation"])
    if sim is None:
        notes[indicator] = f"no finished {src['simulation']} simulation (run: haechi simulate {src['simulation']})"
        return np.full(len(areas.codes), np.nan)
    rows = sim["areas"]
    values = np.array([_number(rows.get(c, {}).get(src["field"])) for c in areas.codes])
    if np.isnan(values).all():
        # The run was at a finer level: average its areas inside each of ours (intensive values).
        by_prefix = [[_number(r.get(src["field"])) for code, r in rows.items() if code.startswith(c)]
                     for c in areas.codes]
        values = np.array([np.nanmean(v) if np.isfinite(v).any() else np.nan for v in map(np.array, by_prefix)])
    notes[indicator] = f"{src['simulation']} simulation {sim['id']}, field {src['field']}"
    return values


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan
