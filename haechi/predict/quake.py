"""Earthquake damage scenarios: ground shaking (BA08) → damage-state probabilities (Hazus fragility).

Pure, vectorised numpy functions first (ground motion, fragility, Korean seismic-code eras), then
the DB side: shaking per dong, expected building damage per dong, and a ranked inspection list of
critical facilities. Every coefficient and threshold is in ``data/quake.toml`` and
``data/quake_fragility_buildings.csv`` with its source; method and limits in docs/earthquake.md.
"""

from __future__ import annotations

import csv
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator
from scipy.special import ndtr
from shapely.geometry import shape
from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from haechi.core.errors import InvalidInput
from haechi.simulation.registry import Kind, Progress

DATA = Path(__file__).parent / "data"
STATES = ("slight", "moderate", "extensive", "complete")
MECHANISMS = {"unspecified": 4, "strike_slip": 5, "normal": 6, "reverse": 7}  # e1..e4 column
EARTH_RADIUS_KM = 6371.0088


# ── model data ──────────────────────────────────────────────────────────────────────────


@dataclass(frozen=True)
class Fragility:
    """Hazus building classes: names like 'C1M/low', medians [n, 4] in g, betas [n]."""

    names: list[str]
    medians: np.ndarray
    betas: np.ndarray
    families: list[str]
    lookup: np.ndarray  # [family, height index, level index] -> row of ``medians``


@dataclass(frozen=True)
class QuakeModel:
    config: dict[str, Any]
    fragility: Fragility
    levels: list[str] = field(default_factory=list)

    @property
    def limits(self) -> dict[str, float]:
        return self.config["limits"]


@cache
def model() -> QuakeModel:
    with open(DATA / "quake.toml", "rb") as f:
        config = tomllib.load(f)
    levels = config["korean_code"]["level_order"]
    return QuakeModel(config, _fragility(config, levels), levels)


def _fragility(config: dict[str, Any], levels: list[str]) -> Fragility:
    with open(DATA / "quake_fragility_buildings.csv", newline="") as f:
        rows = list(csv.DictReader(f))
    index = {(r["hazus_type"], r["code_level"]): i for i, r in enumerate(rows)}
    medians = np.array([[float(r[f"{s}_g"]) for s in STATES] for r in rows])
    betas = np.array([float(r["beta"]) for r in rows])
    families = list(config["height_classes"])
    lookup = np.full((len(families), 3, len(levels)), -1, dtype=np.int64)
    for f_i, family in enumerate(families):
        for h_i, (_, _, suffix) in enumerate(config["height_classes"][family]):
            for l_i in range(len(levels)):
                # Hazus lacks better design levels for some families (URM, C3): use the best below.
                for fallback in range(l_i, -1, -1):
                    row = index.get((family + suffix, levels[fallback]))
                    if row is not None:
                        lookup[f_i, h_i, l_i] = row
                        break
    names = [f"{r['hazus_type']}/{r['code_level']}" for r in rows]
    return Fragility(names, medians, betas, families, lookup)


# ── scenario input ──────────────────────────────────────────────────────────────────────


class QuakeScenario(BaseModel):
    """An earthquake scenario: epicentre, moment magnitude and focal depth."""

    model_config = ConfigDict(extra="forbid")

    lon: float = Field(ge=-180, le=180, description="Epicentre longitude, WGS84 · 진앙 경도")
    lat: float = Field(ge=-90, le=90, description="Epicentre latitude, WGS84 · 진앙 위도")
    magnitude: float = Field(description="Moment magnitude Mw · 규모")
    depth_km: float = Field(description="Focal depth in km · 진원 깊이")
    vs30: float | None = Field(None, description="Site Vs30 in m/s; BA08 reference rock (760) when left out")
    mechanism: Literal["unspecified", "strike_slip", "normal", "reverse"] = "unspecified"
    max_inspection: int = Field(200, ge=1, le=10_000, description="Longest inspection list returned")

    @field_validator("magnitude")
    @classmethod
    def _magnitude_in_range(cls, value: float) -> float:
        low, high = model().limits["magnitude_min"], model().limits["magnitude_max"]
        if not low <= value <= high:
            raise ValueError(f"magnitude {value} is outside the ground-motion model's range {low}–{high} (BA08)")
        return value

    @field_validator("depth_km")
    @classmethod
    def _depth_in_range(cls, value: float) -> float:
        low, high = model().limits["depth_min_km"], model().limits["depth_max_km"]
        if not low <= value <= high:
            raise ValueError(f"depth {value} km is outside {low}–{high} km (shallow crustal events)")
        return value

    @field_validator("vs30")
    @classmethod
    def _vs30_in_range(cls, value: float | None) -> float | None:
        low, high = model().limits["vs30_min"], model().limits["vs30_max"]
        if value is not None and not low <= value <= high:
            raise ValueError(f"vs30 {value} m/s is outside BA08's site range {low}–{high} m/s")
        return value


def check_epicentre(scenario: QuakeScenario, centre: tuple[float, float]) -> float:
    """Distance (km) from the city centre; InvalidInput naming ``lon`` when it is too far."""
    limit = model().limits["max_epicentre_distance_km"]
    distance = float(distance_km(scenario.lon, scenario.lat, np.array([centre[0]]), np.array([centre[1]]))[0])
    if distance > limit:
        raise InvalidInput(
            f"epicentre is {distance:.0f} km from the city centre; scenarios must lie within {limit:.0f} km "
            "(the ground-motion model's distance range)",
            field="lon",
        )
    return distance


# ── ground motion (Boore & Atkinson 2008) ──────────────────────────────────────────────


def distance_km(lon: float, lat: float, lons: np.ndarray, lats: np.ndarray) -> np.ndarray:
    """Great-circle distance (haversine) from one point to many, in km."""
    p1, p2 = np.radians(lat), np.radians(lats)
    dp, dl = p2 - p1, np.radians(lons - lon)
    a = np.sin(dp / 2) ** 2 + np.cos(p1) * np.cos(p2) * np.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * np.arcsin(np.sqrt(np.minimum(a, 1.0)))


def joyner_boore_km(epicentral_km: np.ndarray, magnitude: float) -> np.ndarray:
    """Rjb with the rupture (Wells & Coppersmith 1994 length) centred on the epicentre, toward each site.

    Taking the rupture to extend toward every site is the conservative reading of an unknown strike.
    """
    r = model().config["rupture"]
    half_length = 10 ** (r["a"] + r["b"] * magnitude) / 2
    return np.maximum(epicentral_km - half_length, 0.0)


def _coefficients(imt: str) -> dict[str, float]:
    names = ["c1", "c2", "c3", "h", "e1", "e2", "e3", "e4", "e5", "e6", "e7", "mh", "sigma", "tau", "std",
             "blin", "b1", "b2"]
    return dict(zip(names, model().config["gmpe"]["coefficients"][imt], strict=True))


def _ln_rock(c: dict[str, float], magnitude: float, rjb: np.ndarray, mechanism: str) -> np.ndarray:
    """F_M + F_D of BA08 (equations 3–5): ln of the motion on reference rock (Vs30 = 760 m/s)."""
    g = model().config["gmpe"]
    e_mech = list(c.values())[MECHANISMS[mechanism]]
    dm = magnitude - c["mh"]
    f_m = e_mech + (c["e5"] * dm + c["e6"] * dm**2 if magnitude <= c["mh"] else c["e7"] * dm)
    r = np.sqrt(rjb**2 + c["h"] ** 2)
    f_d = (c["c1"] + c["c2"] * (magnitude - g["mref"])) * np.log(r / g["rref_km"]) + c["c3"] * (r - g["rref_km"])
    return f_m + f_d


def _nonlinear_slope(c: dict[str, float], vs30: np.ndarray) -> np.ndarray:
    """b_nl of BA08 equations 13a–d."""
    g = model().config["gmpe"]
    v1, v2, vref = g["v1"], g["v2"], g["vref"]
    return np.select(
        [vs30 <= v1, vs30 <= v2, vs30 < vref],
        [np.full_like(vs30, c["b1"]),
         (c["b1"] - c["b2"]) * np.log(vs30 / v2) / np.log(v1 / v2) + c["b2"],
         c["b2"] * np.log(vs30 / vref) / np.log(v2 / vref)],
        default=0.0,
    )


def _site_term(c: dict[str, float], vs30: np.ndarray, pga4nl: np.ndarray) -> np.ndarray:
    """F_S = F_LIN + F_NL of BA08 equations 6–8."""
    g = model().config["gmpe"]
    a1, a2, low = g["a1_g"], g["a2_g"], g["pga_low_g"]
    bnl = _nonlinear_slope(c, vs30)
    dx = np.log(a2 / a1)
    dy = bnl * np.log(a2 / low)
    cc = (3 * dy - bnl * dx) / dx**2
    dd = -(2 * dy - bnl * dx) / dx**3
    x = np.log(np.maximum(pga4nl, 1e-12) / a1)
    f_nl = np.select(
        [pga4nl <= a1, pga4nl <= a2],
        [bnl * np.log(low / 0.1), bnl * np.log(low / 0.1) + cc * x**2 + dd * x**3],
        default=bnl * np.log(np.maximum(pga4nl, 1e-12) / 0.1),
    )
    return c["blin"] * np.log(vs30 / g["vref"]) + f_nl


def ground_motion(
    imt: str, magnitude: float, rjb_km: np.ndarray, vs30: np.ndarray | float = 760.0,
    mechanism: str = "unspecified",
) -> np.ndarray:
    """Median motion of BA08: PGA and SA in g, PGV in cm/s. ``imt``: pga, pgv, sa0.3, sa1.0."""
    rjb = np.asarray(rjb_km, dtype=float)
    vs = np.broadcast_to(np.asarray(vs30, dtype=float), rjb.shape)
    pga4nl = np.exp(_ln_rock(_coefficients("pga"), magnitude, rjb, mechanism))
    c = _coefficients(imt)
    ln_rock = np.log(pga4nl) if imt == "pga" else _ln_rock(c, magnitude, rjb, mechanism)
    return np.exp(ln_rock + _site_term(c, vs, pga4nl))


def mmi(pga_g: np.ndarray) -> np.ndarray:
    """Modified Mercalli intensity from PGA (Worden et al. 2012), clipped to I–X."""
    k = model().config["intensity"]
    log_pga = np.log10(np.maximum(np.asarray(pga_g) * 980.665, 1e-6))
    value = np.where(log_pga <= k["t1"], k["c1"] + k["c2"] * log_pga, k["c3"] + k["c4"] * log_pga)
    return np.clip(value, 1.0, 10.0)


# ── fragility ───────────────────────────────────────────────────────────────────────────


def exceedance(demand: np.ndarray, medians: np.ndarray, betas: np.ndarray | float) -> np.ndarray:
    """P(DS ≥ ds | demand) = Φ(ln(demand / median) / β), shape [n, states]."""
    demand = np.asarray(demand, dtype=float)[:, None]
    betas = np.asarray(betas, dtype=float)
    betas = betas[:, None] if betas.ndim == 1 else betas
    return ndtr(np.log(np.maximum(demand, 1e-12) / medians) / betas)


def state_probabilities(exceed: np.ndarray) -> np.ndarray:
    """From P(≥ds) [n, k] to P(none), P(ds1) … P(dsk) [n, k+1]; monotone by construction."""
    exceed = np.minimum.accumulate(exceed, axis=1)  # curves may cross at high demand (equal betas: no)
    upper = np.hstack([np.ones((len(exceed), 1)), exceed])
    lower = np.hstack([exceed, np.zeros((len(exceed), 1))])
    return upper - lower


def family_codes(structure_types: list[str] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Register structure names or Hazus families → family index; -1 (and a mask) when unknown."""
    config = model().config
    families = model().fragility.families
    names, inverse = np.unique(np.asarray(structure_types, dtype=str), return_inverse=True)
    known = {name: i for i, name in enumerate(families)}
    per_name = np.array(
        [known.get(config["structure_types"].get(n, n), -1) for n in names], dtype=np.int64
    )
    codes = per_name[inverse] if len(names) else np.zeros(0, dtype=np.int64)
    return codes, codes < 0


def design_levels(year: np.ndarray, floors: np.ndarray, floor_area_m2: np.ndarray) -> np.ndarray:
    """Hazus design level index per building from Korea's seismic-code eras (first matching era wins)."""
    cfg = model().config["korean_code"]
    levels = model().levels
    out = np.full(len(year), levels.index(cfg["fallback_level"]), dtype=np.int64)
    area = np.nan_to_num(np.asarray(floor_area_m2, dtype=float), nan=0.0)
    for era in reversed(cfg["eras"]):
        designed = (year >= era["from_year"]) & ((floors >= era["min_floors"]) | (area >= era["min_floor_area_m2"]))
        out[designed] = levels.index(era["level"])
    return out


def height_index(family: np.ndarray, floors: np.ndarray) -> np.ndarray:
    """Index of the Hazus height class (L, M, H) within each building's family."""
    config = model().config["height_classes"]
    out = np.zeros(len(family), dtype=np.int64)
    for f_i, name in enumerate(model().fragility.families):
        mask = family == f_i
        if mask.any():
            uppers = np.array([upper for _, upper, _ in config[name]])
            out[mask] = np.minimum(np.searchsorted(uppers, floors[mask], side="left"), len(uppers) - 1)
    return out


@dataclass
class Buildings:
    """A building inventory as columns (one row per building)."""

    lon: np.ndarray
    lat: np.ndarray
    family: np.ndarray  # index into Fragility.families
    floors: np.ndarray
    year: np.ndarray  # completion year; 0 when unknown (taken as pre-code)
    floor_area_m2: np.ndarray
    area: np.ndarray  # index of the area (dong) each building lies in, for aggregation

    def __len__(self) -> int:
        return len(self.lon)


def building_classes(b: Buildings) -> np.ndarray:
    floors = np.maximum(b.floors, 1)
    return model().fragility.lookup[b.family, height_index(b.family, floors),
                                    design_levels(b.year, floors, b.floor_area_m2)]


def building_damage(b: Buildings, scenario: QuakeScenario, chunk: int = 100_000,
                    progress: Progress | None = None) -> tuple[np.ndarray, np.ndarray]:
    """PGA (g) and damage-state probabilities [n, 5] (none … complete) for every building."""
    frag = model().fragility
    vs30 = scenario.vs30 or model().config["site"]["vs30_default"]
    pga = np.empty(len(b))
    probabilities = np.empty((len(b), len(STATES) + 1))
    for start in range(0, len(b), chunk):
        part = slice(start, start + chunk)
        repi = distance_km(scenario.lon, scenario.lat, b.lon[part], b.lat[part])
        pga[part] = ground_motion("pga", scenario.magnitude, joyner_boore_km(repi, scenario.magnitude),
                                  vs30, scenario.mechanism)
        cls = building_classes(Buildings(*(getattr(b, n)[part] for n in Buildings.__dataclass_fields__)))
        probabilities[part] = state_probabilities(exceedance(pga[part], frag.medians[cls], frag.betas[cls]))
        if progress:
            progress(min(start + chunk, len(b)), len(b), "buildings")
    return pga, probabilities


def damage_by_area(area: np.ndarray, probabilities: np.ndarray, n_areas: int) -> np.ndarray:
    """Expected number of buildings in each state per area, [n_areas, 5]."""
    return np.stack(
        [np.bincount(area, weights=probabilities[:, k], minlength=n_areas) for k in range(probabilities.shape[1])],
        axis=1,
    )


# ── the DB side: scenario over the loaded city ─────────────────────────────────────────


def _dongs(conn: Connection) -> list[dict[str, Any]]:
    from haechi.store.schema import admin_areas as a

    rows = conn.execute(select(a.c.code, a.c.name_ko, a.c.parent_code, a.c.level, a.c.geometry)
                        .where(a.c.level.in_(["dong", "district"])).order_by(a.c.code))
    found = []
    for r in rows:
        if r.geometry is None:
            continue
        point = shape(r.geometry).representative_point()
        found.append({"code": r.code, "name_ko": r.name_ko, "parent_code": r.parent_code, "level": r.level,
                      "lon": point.x, "lat": point.y, "geometry": r.geometry})
    return found


def _city_centre(areas: list[dict[str, Any]]) -> tuple[float, float]:
    if not areas:
        raise InvalidInput("no administrative areas are loaded; load a city pack first (haechi city load seoul)",
                           field="city")
    return float(np.mean([a["lon"] for a in areas])), float(np.mean([a["lat"] for a in areas]))


def _facilities(conn: Connection) -> list[dict[str, Any]]:
    from haechi.store.schema import facilities, places

    query = (select(places.c.id, places.c.kind, places.c.name_ko, places.c.area_code, places.c.lon, places.c.lat,
                    places.c.attrs, facilities.c.facility_type, facilities.c.structure_type,
                    facilities.c.completion_year, facilities.c.floors, facilities.c.length_m)
             .select_from(places.outerjoin(facilities, facilities.c.place_id == places.c.id))
             .where(places.c.kind.in_(["facility", "hospital", "school_zone"])))
    return [dict(r._mapping) for r in conn.execute(query)]


def _locate(items: list[dict[str, Any]], areas: list[dict[str, Any]]) -> None:
    """Fill missing coordinates from the item's area (representative point), flagged as such."""
    by_code = {a["code"]: a for a in areas}
    for item in items:
        if item["lon"] is None or item["lat"] is None:
            area = by_code.get(item["area_code"] or "")
            item["located_by"] = "area" if area else None
            if area:
                item["lon"], item["lat"] = area["lon"], area["lat"]
        else:
            item["located_by"] = "point"


def inspection_list(items: list[dict[str, Any]], scenario: QuakeScenario, year_now: int) -> list[dict[str, Any]]:
    """Critical facilities ranked by P(damage ≥ moderate) × criticality (weights in quake.toml)."""
    cfg = model().config
    items = [i for i in items if i["lon"] is not None]
    if not items:
        return []
    lons, lats = np.array([i["lon"] for i in items]), np.array([i["lat"] for i in items])
    rjb = joyner_boore_km(distance_km(scenario.lon, scenario.lat, lons, lats), scenario.magnitude)
    vs30 = scenario.vs30 or cfg["site"]["vs30_default"]
    pga = ground_motion("pga", scenario.magnitude, rjb, vs30, scenario.mechanism)
    sa10 = ground_motion("sa1.0", scenario.magnitude, rjb, vs30, scenario.mechanism)
    ranked = []
    for item, pga_i, sa_i in zip(items, pga, sa10, strict=True):
        role, exceed, assumed = _facility_exceedance(item, float(pga_i), float(sa_i))
        year = item.get("completion_year")
        aging = bool(year and year_now - year >= cfg["inspection"]["aging_years"])
        if role == "building" and not aging and item.get("facility_type") == "building":
            continue  # ordinary, younger buildings are counted per dong, not listed for inspection
        p_moderate = float(exceed[1]) if len(exceed) > 1 else float(exceed[0])
        ranked.append({
            "place_id": item["id"], "role": role, "name_ko": item["name_ko"], "area_code": item["area_code"],
            "lon": item["lon"], "lat": item["lat"], "located_by": item["located_by"],
            "pga_g": round(float(pga_i), 4), "sa1_g": round(float(sa_i), 4),
            "p_slight_or_worse": round(float(exceed[0]), 4), "p_moderate_or_worse": round(p_moderate, 4),
            "criticality": cfg["inspection"]["criticality"][role], "aging": aging, "assumed": assumed,
            "priority": round(p_moderate * cfg["inspection"]["criticality"][role], 4),
        })
    ranked.sort(key=lambda r: (-r["priority"], -r["pga_g"], r["place_id"]))
    return ranked[: scenario.max_inspection]


def _facility_exceedance(item: dict[str, Any], pga: float, sa10: float) -> tuple[str, np.ndarray, str | None]:
    """(role, P(≥ds) per state, the assumption made or None) of one critical facility."""
    cfg = model().config
    kind, ftype = item["kind"], item.get("facility_type")
    if ftype == "bridge":
        b = cfg["bridges"]
        seismic = (item.get("completion_year") or 0) >= cfg["korean_code"]["bridge_seismic_design_year"]
        major = (item.get("length_m") or 0) >= b["major_length_m"]
        medians = b[f"{'seismic' if seismic else 'conventional'}_{'major' if major else 'other'}"]
        assumed = None if item.get("completion_year") else "unknown year: conventional design"
        return "bridge", exceedance(np.array([sa10]), np.array([medians]), b["beta"])[0], assumed
    if ftype == "tunnel":
        t = cfg["tunnels"]
        cut = "cut" in (item.get("structure_type") or "") or "개착" in (item.get("structure_type") or "")
        medians = t["cut_and_cover" if cut else "bored"]
        assumed = None if item.get("structure_type") else "unknown construction: bored"
        return "tunnel", exceedance(np.array([pga]), np.array([medians]), t["beta"])[0], assumed
    role = {"hospital": "hospital", "school_zone": "school"}.get(kind, "building")
    exceed, assumed = _building_exceedance(item, role, pga)
    return role, exceed, assumed


def _building_exceedance(item: dict[str, Any], role: str, pga: float) -> tuple[np.ndarray, str | None]:
    frag = model().fragility
    default = model().config["assumed"][role]
    codes, unknown = family_codes([item.get("structure_type") or ""])
    assumed = []
    family = codes
    if unknown[0]:
        family = np.array([frag.families.index(default["family"])])
        assumed.append(f"structure {default['family']}")
    floors = np.array([item.get("floors") or default["floors"]])
    if not item.get("floors"):
        assumed.append(f"{default['floors']} floors")
    year = np.array([item.get("completion_year") or 0])
    if not item.get("completion_year"):
        assumed.append(f"{default['level']} code")
    b = Buildings(np.zeros(1), np.zeros(1), family, floors, year, np.array([np.nan]), np.zeros(1, dtype=np.int64))
    cls = building_classes(b)
    return exceedance(np.array([pga]), frag.medians[cls], frag.betas[cls])[0], ", ".join(assumed) or None


def _building_inventory(items: list[dict[str, Any]], area_index: dict[str, int]
                        ) -> tuple[Buildings, int, np.ndarray]:
    """Buildings with a known structure, located and inside a loaded area: (inventory, skipped, households)."""
    rows = [i for i in items if i.get("facility_type") == "building" and i["lon"] is not None
            and (i["area_code"] or "") in area_index]
    codes, unknown = family_codes([r.get("structure_type") or "" for r in rows])
    keep = ~unknown
    rows = [r for r, k in zip(rows, keep, strict=True) if k]
    inventory = Buildings(
        lon=np.array([r["lon"] for r in rows], dtype=float), lat=np.array([r["lat"] for r in rows], dtype=float),
        family=codes[keep], floors=np.array([r.get("floors") or 1 for r in rows], dtype=np.int64),
        year=np.array([r.get("completion_year") or 0 for r in rows], dtype=np.int64),
        floor_area_m2=np.array([(r.get("attrs") or {}).get("floor_area_m2", np.nan) for r in rows], dtype=float),
        area=np.array([area_index[r["area_code"]] for r in rows], dtype=np.int64),
    )
    households = np.array([_number((r.get("attrs") or {}).get("households")) for r in rows], dtype=float)
    return inventory, int(unknown.sum()), households


def _number(value: Any) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else np.nan


def run(engine: Engine, params: QuakeScenario, progress: Progress) -> dict[str, Any]:
    """Run a scenario over the loaded city: shaking and damage per dong, and the inspection list."""
    from haechi.core.clock import utcnow

    with engine.connect() as conn:
        areas = _dongs(conn)
        items = _facilities(conn)
    progress(1, 4, "areas")
    centre = _city_centre(areas)
    distance = check_epicentre(params, centre)
    _locate(items, areas)
    dongs = [a for a in areas if a["level"] == "dong"] or [a for a in areas if a["level"] == "district"]
    shaking = _shaking(dongs, params)
    progress(2, 4, "shaking")
    area_index = {a["code"]: i for i, a in enumerate(dongs)}
    inventory, unknown_structure, households = _building_inventory(items, area_index)
    # Chunks of buildings report as fractions of step 3, so long inventories show progress and cancel.
    _, probabilities = building_damage(inventory, params,
                                       progress=lambda done, total, what: progress(2 * total + done, 4 * total, what))
    expected = damage_by_area(inventory.area, probabilities, len(dongs))
    progress(3, 4, "damage")
    with engine.connect() as conn:
        per_household = _persons_per_household(conn, dongs)
        shelters = _shelters(conn)
        exposed = _population_exposed(conn, dongs, shaking["mmi"])
    displaced = displaced_people(probabilities, households, per_household[inventory.area])
    inspection = inspection_list(items, params, utcnow().year)
    progress(4, 4, "inspection")
    displaced_by_area = np.bincount(inventory.area, weights=np.nan_to_num(displaced), minlength=len(dongs))
    result_areas = [_area_row(a, shaking, expected, i) | {"displaced_people": round(float(displaced_by_area[i]), 1)}
                    for i, a in enumerate(dongs)]
    summary = _summary(params, distance, shaking, expected, len(inventory), unknown_structure, inspection)
    summary |= {"population_mmi_6_plus": exposed, "displaced_people": round(float(np.nansum(displaced)), 1),
                "closed_roads": len(closed_roads(inspection))}
    if len(inventory) and np.isnan(households).all():
        summary["notes"].append("no household counts on the buildings (attrs.households): displaced people are "
                                "not estimated")
    return {
        "summary": summary,
        "areas": result_areas,
        "inspection": inspection,
        "shelters": shelter_demand(shelters, inventory, displaced),
        "closed_roads": closed_roads(inspection),
        # Geometry is left out (null): the layer endpoint joins each dong's boundary by its code, so
        # a stored run does not copy the city's polygons.
        "features": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": None, "properties": row} for row in result_areas
        ]},
        "method": {"ground_motion": model().config["sources"]["gmpe"],
                   "fragility": model().config["sources"]["building_fragility"]},
    }


def _shaking(dongs: list[dict[str, Any]], params: QuakeScenario) -> dict[str, np.ndarray]:
    lons, lats = np.array([d["lon"] for d in dongs]), np.array([d["lat"] for d in dongs])
    rjb = joyner_boore_km(distance_km(params.lon, params.lat, lons, lats), params.magnitude)
    vs30 = params.vs30 or model().config["site"]["vs30_default"]
    pga = ground_motion("pga", params.magnitude, rjb, vs30, params.mechanism)
    return {"rjb": rjb, "pga": pga, "pgv": ground_motion("pgv", params.magnitude, rjb, vs30, params.mechanism),
            "mmi": mmi(pga)}


def _area_row(area: dict[str, Any], shaking: dict[str, np.ndarray], expected: np.ndarray, i: int) -> dict[str, Any]:
    buildings = float(expected[i].sum())
    return {
        "code": area["code"], "name_ko": area["name_ko"], "parent_code": area["parent_code"],
        "rjb_km": round(float(shaking["rjb"][i]), 2), "pga_g": round(float(shaking["pga"][i]), 4),
        "pgv_cms": round(float(shaking["pgv"][i]), 2), "mmi": round(float(shaking["mmi"][i]), 1),
        "buildings": round(buildings),
        **{f"expected_{s}": round(float(expected[i, k + 1]), 2) for k, s in enumerate(STATES)},
        "share_moderate_or_worse": round(float(expected[i, 2:].sum() / buildings), 4) if buildings else None,
    }


def _summary(params: QuakeScenario, distance: float, shaking: dict[str, np.ndarray], expected: np.ndarray,
             buildings: int, unknown_structure: int, inspection: list[dict[str, Any]]) -> dict[str, Any]:
    totals = expected.sum(axis=0) if len(expected) else np.zeros(len(STATES) + 1)
    notes = []
    if buildings == 0:
        notes.append("no building inventory with structure types is loaded: damage counts are zero; "
                     "shaking per dong is still computed")
    if unknown_structure:
        notes.append(f"{unknown_structure} buildings with an unknown structure type were left out of the counts")
    return {
        "epicentre": [params.lon, params.lat], "magnitude": params.magnitude, "depth_km": params.depth_km,
        "distance_to_city_centre_km": round(distance, 1),
        "max_pga_g": round(float(shaking["pga"].max()), 4), "max_mmi": round(float(shaking["mmi"].max()), 1),
        "areas_mmi_6_plus": int((shaking["mmi"] >= 6).sum()), "areas": len(shaking["pga"]),
        "buildings": buildings,
        **{f"expected_{s}": round(float(totals[k + 1]), 1) for k, s in enumerate(STATES)},
        "inspection_items": len(inspection),
        "notes": notes,
    }


def closed_roads(inspection: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Bridges and tunnels to close until inspected (threshold in quake.toml); a recommendation only:
    a simulation never writes road closures."""
    limit = model().config["inspection"]["close_when_p_moderate"]
    return [{k: r[k] for k in ("place_id", "role", "name_ko", "area_code", "lon", "lat", "p_moderate_or_worse")}
            for r in inspection if r["role"] in ("bridge", "tunnel") and r["p_moderate_or_worse"] >= limit]


def displaced_people(probabilities: np.ndarray, households: np.ndarray, per_household: np.ndarray) -> np.ndarray:
    """People needing shelter per building: households × (w_ext P(extensive) + w_comp P(complete)) × persons
    per household (Hazus ch. 14 weights in quake.toml); NaN where a count is unknown."""
    d = model().config["displacement"]
    uninhabitable = d["extensive"] * probabilities[:, 3] + d["complete"] * probabilities[:, 4]
    return households * uninhabitable * per_household


def shelter_demand(shelters: list[dict[str, Any]], b: Buildings, displaced: np.ndarray) -> list[dict[str, Any]]:
    """Displaced people sent to their nearest earthquake shelter, against its capacity."""
    if not shelters:
        return []
    lons, lats = np.array([s["lon"] for s in shelters]), np.array([s["lat"] for s in shelters])
    demand = np.zeros(len(shelters))
    counted = ~np.isnan(displaced)
    for start in range(0, len(b), 20_000):  # buildings × shelters distances, a block at a time
        part = slice(start, start + 20_000)
        d = np.stack([distance_km(lon, lat, b.lon[part], b.lat[part]) for lon, lat in zip(lons, lats, strict=True)])
        nearest = d.argmin(axis=0)
        demand += np.bincount(nearest[counted[part]], weights=displaced[part][counted[part]], minlength=len(shelters))
    rows = [{**s, "demand_people": round(float(n), 1),
             "over_capacity": bool(s["capacity"] is not None and n > s["capacity"])} for s, n in zip(shelters, demand,
                                                                                                   strict=True)]
    return sorted(rows, key=lambda r: -r["demand_people"])


def _shelters(conn: Connection) -> list[dict[str, Any]]:
    from haechi.store.schema import places, shelters

    kinds = model().config["displacement"]["shelter_kinds"]
    rows = conn.execute(select(places.c.id, places.c.name_ko, places.c.area_code, places.c.lon, places.c.lat,
                               shelters.c.shelter_kind, shelters.c.capacity)
                        .join(shelters, shelters.c.place_id == places.c.id)
                        .where(shelters.c.shelter_kind.in_(kinds), places.c.lon.is_not(None), places.c.lat.is_not(None))
                        .order_by(places.c.id))
    return [{"place_id": r.id, "name_ko": r.name_ko, "area_code": r.area_code, "lon": r.lon, "lat": r.lat,
             "shelter_kind": r.shelter_kind, "capacity": r.capacity} for r in rows]


def _district_stat(conn: Connection, indicator: str) -> dict[str, float]:
    from haechi.store.schema import area_statistics as st

    rows = conn.execute(select(st.c.area_code, st.c.value).where(st.c.indicator == indicator).order_by(st.c.year))
    return {code: value for code, value in rows}  # the latest year wins


def _persons_per_household(conn: Connection, dongs: list[dict[str, Any]]) -> np.ndarray:
    """Population / households of each dong's district (or the dong itself), NaN when unknown."""
    population, households = _district_stat(conn, "population"), _district_stat(conn, "households")
    out = np.full(len(dongs), np.nan)
    for i, d in enumerate(dongs):
        for code in (d["code"], d["parent_code"]):
            if code in population and households.get(code):
                out[i] = population[code] / households[code]
                break
    return out


def _population_exposed(conn: Connection, dongs: list[dict[str, Any]], intensity: np.ndarray) -> int | None:
    """Residents where MMI ≥ VI: each district's population × the share of its area shaken that hard
    (uniform density within a district, as dong populations are not loaded)."""
    from haechi.store.schema import admin_areas as a

    population = _district_stat(conn, "population")
    km2 = dict(conn.execute(select(a.c.code, a.c.area_km2)).all())
    total, strong = {}, {}
    for d, mmi_i in zip(dongs, intensity, strict=True):
        district = d["parent_code"] if d["level"] == "dong" else d["code"]
        size = km2.get(d["code"]) or 0.0
        total[district] = total.get(district, 0.0) + size
        strong[district] = strong.get(district, 0.0) + (size if mmi_i >= 6 else 0.0)
    known = [c for c in total if c in population and total[c] > 0]
    if not known:
        return None
    return round(sum(population[c] * strong[c] / total[c] for c in known))


def check(engine: Engine, params: QuakeScenario) -> None:
    """Before queueing: the city is loaded and the epicentre lies within the model's distance range."""
    with engine.connect() as conn:
        centre = _city_centre_quick(conn)
    check_epicentre(params, centre)


def _city_centre_quick(conn: Connection) -> tuple[float, float]:
    from sqlalchemy import func

    from haechi.store.schema import admin_areas as a

    row = conn.execute(select(func.min(a.c.min_lon), func.min(a.c.min_lat), func.max(a.c.max_lon),
                              func.max(a.c.max_lat)).where(a.c.level == "district")).one()
    if row[0] is None:
        raise InvalidInput("no administrative areas are loaded; load a city pack first (haechi city load seoul)",
                           field="city")
    return (row[0] + row[2]) / 2, (row[1] + row[3]) / 2


SIMULATION = Kind(name="quake", params=QuakeScenario, run=run, check=check)
