"""Heat-health risk per area: apparent-temperature forecast × vulnerability, with cooling shelters.

Hazard: the daily maximum of the KMA summer apparent temperature (``haechi/warnings/apparent.py``)
of the forecast, graded by KMA's 폭염 영향예보 steps (31/33/35/38 °C, ``data/heat.toml``). The
hazard score is the step's number (0–4). Vulnerability: the area's shares of people aged 65+ and of
older people living alone, each over the city's share, weighted (1.0 = the city average). Risk =
hazard score × vulnerability. Cooling shelters (무더위쉼터) and their capacity are counted per area
when the database has them, with older residents per shelter place. Outdoor workers and homes
without cooling have no per-area data in the pack: they are reported as missing, never guessed.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, model_validator
from sqlalchemy import Connection, select
from sqlalchemy.engine import Engine

from haechi.core.errors import InvalidInput
from haechi.model.apparent import apparent_temperature
from haechi.store.schema import admin_areas, area_statistics, places, shelters

DATA = Path(__file__).with_name("data") / "heat.toml"
_apparent = np.vectorize(apparent_temperature, otypes=[float])  # the warnings engine's own formula


@dataclass(frozen=True)
class HeatConfig:
    levels: tuple[str, ...]
    levels_ko: tuple[str, ...]
    lower_c: np.ndarray
    score: np.ndarray
    groups: tuple[str, ...]
    weights: np.ndarray
    missing: tuple[str, ...]
    shelter_kind: str


@cache
def config(path: Path = DATA) -> HeatConfig:
    with open(path, "rb") as f:
        t = tomllib.load(f)
    h, v = t["hazard"], t["vulnerability"]
    return HeatConfig(tuple(h["levels"]), tuple(h["levels_ko"]), np.array(h["lower_c"], dtype=float),
                      np.array(h["score"], dtype=float), tuple(v["groups"]), np.array(v["weights"], dtype=float),
                      tuple(v["missing"]), t["shelters"]["shelter_kind"])


def apparent(ta_c: np.ndarray, rh_pct: np.ndarray) -> np.ndarray:
    """KMA summer apparent temperature (°C), element-wise."""
    ta, rh = np.broadcast_arrays(np.asarray(ta_c, dtype=float), np.asarray(rh_pct, dtype=float))
    if ta.size == 0:
        raise InvalidInput("the forecast is empty: give hourly air temperatures", field="air_temperature_c")
    if np.any((rh <= 0) | (rh > 100)) or np.any(np.isnan(rh)):
        raise InvalidInput("relative humidity must be in (0, 100] %", field="relative_humidity_pct")
    if np.any((ta < -40) | (ta > 50)) or np.any(np.isnan(ta)):
        raise InvalidInput("air temperature must be within −40…50 °C", field="air_temperature_c")
    return _apparent(ta, rh)


def daily_max(values: np.ndarray, hours_per_day: int = 24) -> np.ndarray:
    """Maximum of each (possibly partial) day along the last axis of hourly values."""
    values = np.atleast_2d(values)
    days = -(-values.shape[-1] // hours_per_day)
    padded = np.full((*values.shape[:-1], days * hours_per_day), -np.inf)
    padded[..., :values.shape[-1]] = values
    return padded.reshape(*values.shape[:-1], days, hours_per_day).max(axis=-1)


def hazard_level(at_max: np.ndarray, cfg: HeatConfig | None = None) -> np.ndarray:
    """Index into ``levels`` (0 none … 4 danger) of daily maxima."""
    cfg = cfg or config()
    return np.searchsorted(cfg.lower_c, np.asarray(at_max, dtype=float), side="right") - 1


def vulnerability(counts: np.ndarray, population: np.ndarray, cfg: HeatConfig | None = None) -> np.ndarray:
    """Weighted ratio of each area's group shares to the city's (areas × groups counts); 1.0 = average.

    A group unknown for an area (NaN) counts as the city average for it.
    """
    cfg = cfg or config()
    counts, population = np.asarray(counts, dtype=float), np.asarray(population, dtype=float)
    if np.any(population <= 0):
        raise InvalidInput("every area needs a population > 0", field="population")
    shares = counts / population[:, None]
    known = np.isfinite(shares)
    city = np.nansum(counts, axis=0) / np.array([population[known[:, j]].sum() or np.nan
                                                 for j in range(counts.shape[1])])
    relative = np.where(known, shares / city, 1.0)
    return relative @ (cfg.weights / cfg.weights.sum())


def assess(at_max: np.ndarray, vuln: np.ndarray, cfg: HeatConfig | None = None) -> dict[str, np.ndarray]:
    """Per area and day: hazard level and score; per area: the worst day's risk = score × vulnerability."""
    cfg = cfg or config()
    level = hazard_level(at_max, cfg)
    score = cfg.score[level]
    return {"level": level, "score": score, "risk": score.max(axis=-1) * np.asarray(vuln, dtype=float),
            "worst_day": score.argmax(axis=-1)}


# ── reading the database ──────────────────────────────────────────────────────────────────

@dataclass
class HeatAreas:
    codes: list[str]
    names: list[str]
    population: np.ndarray
    groups: np.ndarray  # areas × cfg.groups, NaN where unknown
    shelters: np.ndarray  # cooling shelters per area
    capacity: np.ndarray  # their summed capacity (persons); NaN where none is known
    geometries: list[dict | None]
    shelter_data: bool


def load_areas(conn: Connection, level: str = "district", cfg: HeatConfig | None = None) -> HeatAreas:
    """Areas with population and the vulnerable groups (latest year each), and cooling shelters."""
    cfg = cfg or config()
    a = admin_areas.c
    rows = conn.execute(select(a.code, a.name_ko, a.geometry).where(a.level == level).order_by(a.code)).all()
    index = {r.code: i for i, r in enumerate(rows)}
    wanted = ("population", *cfg.groups)
    values = np.full((len(rows), len(wanted)), np.nan)
    s = area_statistics.c
    query = select(s.area_code, s.indicator, s.value).where(s.indicator.in_(wanted), s.area_code.in_(list(index)))
    for code, indicator, value in conn.execute(query.order_by(s.year)):
        values[index[code], wanted.index(indicator)] = value
    keep = np.isfinite(values[:, 0]) & (values[:, 0] > 0)
    if not keep.any():
        raise InvalidInput(f"no {level} has a population statistic; load a city pack with statistics", field="level")
    count, capacity, any_shelter = _cooling_shelters(conn, [r.code for r in rows], cfg)
    chosen = np.flatnonzero(keep)
    return HeatAreas([rows[i].code for i in chosen], [rows[i].name_ko for i in chosen], values[chosen, 0],
                     values[chosen, 1:], count[chosen], capacity[chosen], [rows[i].geometry for i in chosen],
                     any_shelter)


def _cooling_shelters(conn: Connection, codes: list[str], cfg: HeatConfig) -> tuple[np.ndarray, np.ndarray, bool]:
    p, sh = places.c, shelters.c
    found = conn.execute(select(p.area_code, sh.capacity).join(shelters, sh.place_id == p.id)
                         .where(sh.shelter_kind == cfg.shelter_kind)).all()
    count, capacity = np.zeros(len(codes)), np.full(len(codes), np.nan)
    for area_code, cap in found:
        for i, code in enumerate(codes):
            if area_code and area_code.startswith(code):
                count[i] += 1
                if cap is not None:
                    capacity[i] = np.nansum([capacity[i], cap])
                break
    return count, capacity, bool(found)


# ── simulation (the virtual city) ─────────────────────────────────────────────────────────

class HeatScenario(BaseModel):
    """A what-if hot spell: hourly air temperature and humidity from 00 KST of the first day."""

    air_temperature_c: list[float] = Field(min_length=1)
    relative_humidity_pct: list[float] = Field(min_length=1, description="one value, or one per hour")
    level: Literal["district"] = "district"  # statistics are kept per district

    @model_validator(mode="after")
    def _lengths(self) -> HeatScenario:
        if len(self.relative_humidity_pct) not in (1, len(self.air_temperature_c)):
            raise ValueError("relative_humidity_pct needs one value or one per hour of air_temperature_c")
        return self


def simulate(engine: Engine, params: HeatScenario, progress) -> dict[str, Any]:
    """Run a heat scenario: reads areas and shelters, writes nothing."""
    cfg = config()
    progress(0, 3, "apparent temperature")
    at = apparent(np.array(params.air_temperature_c), np.array(params.relative_humidity_pct))
    at_max = daily_max(at)[0]
    progress(1, 3, "areas")
    with engine.connect() as conn:
        areas = load_areas(conn, params.level, cfg)
    vuln = vulnerability(areas.groups, areas.population, cfg)
    result = assess(np.tile(at_max, (len(areas.codes), 1)), vuln, cfg)
    progress(2, 3, "risk")
    elderly = (areas.groups[:, cfg.groups.index("age_65_plus")] if "age_65_plus" in cfg.groups
               else np.full(len(vuln), np.nan))
    rows = []
    for i, code in enumerate(areas.codes):
        level = int(result["level"][i].max())
        cap = areas.capacity[i]
        rows.append({
            "code": code, "name_ko": areas.names[i], "risk": round(float(result["risk"][i]), 3),
            "hazard": cfg.levels[level], "hazard_ko": cfg.levels_ko[level], "vulnerability": round(float(vuln[i]), 3),
            "population": int(areas.population[i]),
            "age_65_plus": None if np.isnan(elderly[i]) else int(elderly[i]),
            "cooling_shelters": int(areas.shelters[i]) if areas.shelter_data else None,
            "cooling_capacity": None if np.isnan(cap) else int(cap),
            "elderly_per_place": (None if np.isnan(cap) or cap <= 0 or np.isnan(elderly[i])
                                  else round(float(elderly[i] / cap), 1)),
        })
    rows.sort(key=lambda r: (-r["risk"], r["code"]))
    by_code = dict(zip(areas.codes, areas.geometries, strict=True))
    progress(3, 3, "done")
    return {
        "summary": {"areas": len(rows), "apparent_max_c": [round(float(v), 1) for v in at_max],
                    "hazard_by_day": [cfg.levels[int(v)] for v in hazard_level(at_max, cfg)],
                    "shelter_data": areas.shelter_data, "missing_data": list(cfg.missing),
                    "method": "KMA apparent temperature × 폭염 영향예보 steps × vulnerability; docs/predictions.md"},
        "areas": rows,
        "features": {"type": "FeatureCollection", "features": [
            {"type": "Feature", "geometry": by_code[r["code"]], "properties": r} for r in rows]},
    }


def _simulation():
    try:
        from haechi.simulation.registry import Kind
    except ImportError:
        return None
    return Kind(name="heat", params=HeatScenario, run=simulate)


SIMULATION = _simulation()
