"""Urban flooding: rainfall → SCS runoff per area → surcharge of the design drainage → inundation risk.

Method (docs/predictions.md): each administrative dong is one drainage area. Its curve number is
the area-weighted TR-55 value of its land use (``land_use`` table, else a documented default mix,
``data/flood.toml``). Runoff per time step follows the SCS curve-number method on the cumulative
rainfall (``runoff.py``). The drainage of an area carries the runoff its design hour — Seoul's
방재성능목표, rain it can handle in one hour — would make on that area after the same earlier rain;
the surcharge ratio is the peak of trailing 1-hour runoff over that capacity (≥ 1 exactly when the
hour's rain passes the target), its class is the inundation risk, and the runoff above capacity is
the overflow volume left on the surface (more on paved ground than on woods). Semi-basement homes and
underpasses are counted where the database has them, and said to be unknown where it does not.

Pure numeric logic (:func:`assess`) is separate from reading the database (:func:`load_areas`).
"""

from __future__ import annotations

import csv
import math
import tomllib
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from haechi.core.errors import InvalidInput
from haechi.store.schema import admin_areas, area_statistics, facilities, land_use, places

from .runoff import composite_cn, rolling_sum, runoff_mm, step_runoff_mm

DATA = Path(__file__).with_name("data")
SEMI_BASEMENT = "semi_basement_households"  # area_statistics indicator, when a pack provides it
UNDERPASS_WORDS = ("지하차도", "underpass")


@dataclass(frozen=True)
class FloodConfig:
    use_classes: tuple[str, ...]
    class_cn: np.ndarray  # curve number per use class, for the configured soil group
    default_shares: np.ndarray  # land-use shares of an area without land_use rows
    citywide_mm_h: float
    before_2022_mm_h: float
    area_mm_h: dict[str, float]  # design rainfall overrides by area code
    risk_levels: tuple[str, ...]
    risk_lower: np.ndarray


@cache
def config(folder: Path = DATA) -> FloodConfig:
    with open(folder / "flood.toml", "rb") as f:
        toml = tomllib.load(f)
    group = toml["soil"]["group"].lower()
    with open(folder / "curve_numbers.csv", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    classes = tuple(r["use_class"] for r in rows)
    defaults = toml["default_land_use"]
    design = toml["design_rainfall"]
    return FloodConfig(
        use_classes=classes, class_cn=np.array([float(r[f"cn_{group}"]) for r in rows]),
        default_shares=np.array([float(defaults.get(c, 0.0)) for c in classes]),
        citywide_mm_h=float(design["citywide_mm_h"]), before_2022_mm_h=float(design["before_2022_mm_h"]),
        area_mm_h={a["code"]: float(a["mm_h"]) for a in design.get("area", [])},
        risk_levels=tuple(toml["risk"]["levels"]), risk_lower=np.array(toml["risk"]["lower_ratio"], dtype=float))


@dataclass
class Areas:
    """The drainage areas (dongs) and what the model knows of each, as parallel arrays."""

    codes: list[str]
    names: list[str]
    area_km2: np.ndarray
    shares: np.ndarray  # areas × use classes
    land_use_known: np.ndarray  # bool: shares from the land_use table (else the default mix)
    design_mm_h: np.ndarray
    semi_basement: np.ndarray  # households; NaN where unknown
    underpasses: np.ndarray  # count; -1 where the database has no underpass data at all
    geometries: list[dict | None] = field(default_factory=list)


def assess(rain_mm: np.ndarray, step_min: float, areas: Areas, cfg: FloodConfig | None = None) -> dict[str, np.ndarray]:
    """Per-area runoff, capacity, surcharge and risk for rainfall per step (steps, or areas × steps)."""
    cfg = cfg or config()
    rain = _checked_rain(rain_mm, len(areas.codes))
    steps_per_hour = 60.0 / step_min
    if not steps_per_hour.is_integer() or steps_per_hour < 1:
        raise InvalidInput("step_minutes must divide 60 (1, 5, 10, 15, 30 or 60)", field="step_minutes")
    cn = composite_cn(areas.shares, cfg.class_cn)
    width = int(steps_per_hour)
    q_step = step_runoff_mm(rain, cn)
    hourly = rolling_sum(q_step, width)  # runoff of the trailing hour
    # The drainage carries the runoff the design hour (방재성능목표, rain per hour) makes when it falls
    # on the same wetted ground: a storm surcharges it exactly when its hourly rain passes the target,
    # and how much water is left on the surface then depends on the curve number.
    rain_cum = np.broadcast_to(np.cumsum(rain, axis=-1), q_step.shape)
    before = rain_cum - rolling_sum(np.broadcast_to(rain, q_step.shape), width)
    cn_col, design = cn[:, None], areas.design_mm_h[:, None]
    capacity_t = runoff_mm(before + design, cn_col) - runoff_mm(before, cn_col)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio_t = np.where(capacity_t > 0, hourly / capacity_t, 0.0)
    worst = ratio_t.argmax(axis=-1)
    rows = np.arange(len(cn))
    ratio, peak, capacity = ratio_t[rows, worst], hourly.max(axis=-1), capacity_t[rows, worst]
    over = hourly > capacity_t
    first = np.where(over.any(axis=-1), (over.argmax(axis=-1) + 1) * step_min, -1.0)
    overflow_mm = np.maximum(q_step - capacity_t / steps_per_hour, 0.0).sum(axis=-1)
    level = np.searchsorted(cfg.risk_lower, ratio, side="right") - 1
    return {"cn": cn, "rain_mm": np.broadcast_to(rain.sum(axis=-1), cn.shape), "runoff_mm": q_step.sum(axis=-1),
            "peak_runoff_mm_h": peak, "capacity_mm_h": capacity, "surcharge_ratio": ratio,
            "first_surcharge_min": first, "overflow_m3": overflow_mm / 1000.0 * areas.area_km2 * 1e6,
            "risk_level": level}


def _checked_rain(rain_mm: Any, n_areas: int) -> np.ndarray:
    rain = np.asarray(rain_mm, dtype=float)
    if rain.size == 0 or rain.shape[-1] == 0:
        raise InvalidInput("rainfall is empty: give at least one step of rain in mm", field="rainfall_mm")
    if np.any(np.isnan(rain)) or np.any(rain < 0):
        raise InvalidInput("rainfall must be numbers ≥ 0 mm per step", field="rainfall_mm")
    if rain.ndim == 2 and rain.shape[0] != n_areas:
        raise InvalidInput(f"rainfall has {rain.shape[0]} rows for {n_areas} areas", field="rainfall_mm")
    if rain.ndim > 2:
        raise InvalidInput("rainfall is a series, or one series per area", field="rainfall_mm")
    return rain


def risk_rows(areas: Areas, result: dict[str, np.ndarray], cfg: FloodConfig | None = None) -> list[dict[str, Any]]:
    """One dict per area, riskiest first (the shape of a simulation's ``areas``)."""
    cfg = cfg or config()
    rows = []
    for i, code in enumerate(areas.codes):
        semi = areas.semi_basement[i]
        under = int(areas.underpasses[i])
        rows.append({
            "code": code, "name_ko": areas.names[i], "risk": cfg.risk_levels[int(result["risk_level"][i])],
            "surcharge_ratio": _round(result["surcharge_ratio"][i], 3),
            "curve_number": round(float(result["cn"][i]), 1),
            "rain_mm": round(float(result["rain_mm"][i]), 1), "runoff_mm": round(float(result["runoff_mm"][i]), 1),
            "peak_runoff_mm_h": round(float(result["peak_runoff_mm_h"][i]), 1),
            "capacity_mm_h": round(float(result["capacity_mm_h"][i]), 1),
            "design_rainfall_mm_h": float(areas.design_mm_h[i]),
            "first_surcharge_min": (None if result["first_surcharge_min"][i] < 0
                                    else float(result["first_surcharge_min"][i])),
            "overflow_m3": round(float(result["overflow_m3"][i])),
            "land_use": "land_use table" if areas.land_use_known[i] else "default mix (data/flood.toml)",
            "semi_basement_households": None if np.isnan(semi) else int(semi),
            "underpasses": None if under < 0 else under,
        })
    rows.sort(key=lambda r: (-cfg.risk_levels.index(r["risk"]), -r["overflow_m3"], -(r["surcharge_ratio"] or 0),
                             r["code"]))
    return rows


def _round(value: float, digits: int) -> float | None:
    return None if not np.isfinite(value) else round(float(value), digits)


# ── reading the database ──────────────────────────────────────────────────────────────────

def load_areas(conn: Connection, *, level: str = "dong", codes: list[str] | None = None,
               design: Literal["current", "before_2022"] = "current", geometry: bool = True,
               cfg: FloodConfig | None = None) -> Areas:
    """The areas of ``level`` with land use, design rainfall, semi-basements and underpasses."""
    cfg = cfg or config()
    a = admin_areas.c
    query = select(a.code, a.name_ko, a.area_km2, *( [a.geometry] if geometry else [])).where(a.level == level)
    if codes:
        query = query.where(a.code.in_(codes))
    rows = conn.execute(query.order_by(a.code)).all()
    if not rows:
        raise InvalidInput(f"no administrative areas of level {level!r} to assess; load a city pack first",
                           field="areas" if codes else "level")
    found = [r.code for r in rows]
    index = {code: i for i, code in enumerate(found)}
    shares, known = _land_use(conn, index, cfg)
    citywide = cfg.citywide_mm_h if design == "current" else cfg.before_2022_mm_h
    design_mm_h = np.array([cfg.area_mm_h.get(c, citywide) if design == "current" else citywide for c in found])
    return Areas(
        codes=found, names=[r.name_ko for r in rows], area_km2=np.array([r.area_km2 or 0.0 for r in rows]),
        shares=shares, land_use_known=known, design_mm_h=design_mm_h,
        semi_basement=_semi_basements(conn, index), underpasses=_underpasses(conn, found),
        geometries=[r.geometry for r in rows] if geometry else [])


def _land_use(conn: Connection, index: dict[str, int], cfg: FloodConfig) -> tuple[np.ndarray, np.ndarray]:
    shares = np.tile(cfg.default_shares, (len(index), 1))
    known = np.zeros(len(index), dtype=bool)
    column = {c: j for j, c in enumerate(cfg.use_classes)}
    lu = land_use.c
    for code, use_class, km2 in conn.execute(select(lu.area_code, lu.use_class, lu.area_km2)
                                              .where(lu.area_code.in_(list(index)))):
        i = index[code]
        if use_class not in column:
            continue  # a class without a curve number: left out of the composite (documented)
        if not known[i]:
            shares[i] = 0.0
            known[i] = True
        shares[i, column[use_class]] += km2
    empty = known & (shares.sum(axis=1) <= 0)
    shares[empty], known[empty] = cfg.default_shares, False
    return shares, known


def _semi_basements(conn: Connection, index: dict[str, int]) -> np.ndarray:
    values = np.full(len(index), np.nan)
    s = area_statistics.c
    query = (select(s.area_code, s.value).where(s.indicator == SEMI_BASEMENT, s.area_code.in_(list(index)))
             .order_by(s.year))  # the latest year wins
    for code, value in conn.execute(query):
        values[index[code]] = value
    return values


def _underpasses(conn: Connection, codes: list[str]) -> np.ndarray:
    """Underpasses per area, from facility places named or typed as such; -1 when none are known anywhere."""
    p, f = places.c, facilities.c
    rows = conn.execute(select(p.area_code, p.name_ko, p.attrs).join(facilities, f.place_id == p.id)
                        .where(f.facility_type.in_(("underground", "tunnel")))).all()
    hits = [r.area_code for r in rows if r.area_code and (
        any(w in (r.name_ko or "") for w in UNDERPASS_WORDS) or (r.attrs or {}).get("subtype") == "underpass")]
    if not hits:
        return np.full(len(codes), -1)
    return np.array([sum(1 for h in hits if h == c or h.startswith(c)) for c in codes])


# ── simulation (the virtual city) ─────────────────────────────────────────────────────────

class FloodScenario(BaseModel):
    """A what-if storm over the city: rainfall per step, the same over every area."""

    rainfall_mm: list[float] = Field(description="rain per step in mm, e.g. 36 ten-minute values for 6 hours")
    step_minutes: int = Field(10, ge=1, le=60)
    level: Literal["dong", "district"] = "dong"
    areas: list[str] | None = Field(None, description="area codes to assess; all of the level when empty")
    design: Literal["current", "before_2022"] = "current"

    @field_validator("rainfall_mm")
    @classmethod
    def _rain(cls, value: list[float]) -> list[float]:
        if not value:
            raise ValueError("rainfall is empty: give at least one step of rain in mm")
        if any(v < 0 or math.isnan(v) for v in value):
            raise ValueError("rainfall must be numbers ≥ 0 mm per step")
        return value

    @field_validator("step_minutes")
    @classmethod
    def _step(cls, value: int) -> int:
        if 60 % value:
            raise ValueError("step_minutes must divide 60 (1, 5, 10, 15, 30 or 60)")
        return value


def simulate(engine: Engine, params: FloodScenario, progress) -> dict[str, Any]:
    """Run a flood scenario: read-only on the database, the result is returned, never stored as live state."""
    progress(0, 3, "areas")
    with engine.connect() as conn:
        areas = load_areas(conn, level=params.level, codes=params.areas, design=params.design)
    progress(1, 3, "runoff")
    result = assess(np.asarray(params.rainfall_mm), params.step_minutes, areas)
    progress(2, 3, "risk")
    rows = risk_rows(areas, result)
    by_code = dict(zip(areas.codes, areas.geometries, strict=False))
    features = [{"type": "Feature", "geometry": by_code.get(r["code"]), "properties": r} for r in rows]
    counts = {level: sum(1 for r in rows if r["risk"] == level) for level in config().risk_levels}
    progress(3, 3, "done")
    return {
        "summary": {
            "areas": len(rows), "by_risk": counts, "rain_mm": round(sum(params.rainfall_mm), 1),
            "peak_rain_mm_h": round(float(rolling_sum(np.asarray(params.rainfall_mm),
                                                      60 // params.step_minutes).max()), 1),
            "surcharged_areas": counts.get("high", 0) + counts.get("severe", 0),
            "overflow_m3": sum(r["overflow_m3"] for r in rows),
            "semi_basement_data": bool(np.isfinite(areas.semi_basement).any()),
            "underpass_data": bool((areas.underpasses >= 0).any()),
            "method": "SCS curve number (USDA NRCS TR-55) vs 방재성능목표 design rainfall; docs/predictions.md",
        },
        "areas": rows,
        "features": {"type": "FeatureCollection", "features": features},
    }


def _simulation():
    try:
        from haechi.simulation.registry import Kind
    except ImportError:  # the simulation package is optional for the model itself
        return None
    return Kind(name="flood", params=FloodScenario, run=simulate)


SIMULATION = _simulation()
