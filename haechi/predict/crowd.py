"""Crowd safety: density per zone from counts → Fruin level of service, trend, and time to danger.

Density is people counted in a zone (CCTV analytics or mobile population) over its walkable area.
Its level of service follows Fruin (1971), walkway or queuing table (``data/crowd_los.csv``). The
trend is the least-squares slope of density over the recent window (persons/m² per minute); where it
rises, the straight line gives the minutes until the warning density (4.7/m², Green Guide) and the
dangerous one (5.55/m², Fruin) — a warning *before* the crowd is dangerous. Short linear
extrapolation only: crowds can surge faster than a line, so the warning density sits below danger.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field, field_validator, model_validator
from sqlalchemy.engine import Engine

from haechi.core.errors import InvalidInput

DATA = Path(__file__).with_name("data") / "crowd_los.csv"
LOS = "ABCDEF"
FORECAST_MINUTES = (10,)  # the forecast datastream: forecast_crowd_density_10m


@dataclass(frozen=True)
class CrowdTable:
    walkway: np.ndarray  # lower density bound of LOS A…F (persons/m²)
    queue: np.ndarray
    warning: float
    dangerous: float


@cache
def table(path: Path = DATA) -> CrowdTable:
    with open(path, encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    lower = {kind: np.array([float(r["min_density_p_m2"]) for r in rows if r["kind"] == kind])
             for kind in ("walkway", "queue")}
    danger = {r["level"]: float(r["min_density_p_m2"]) for r in rows if r["kind"] == "danger"}
    return CrowdTable(lower["walkway"], lower["queue"], danger["warning"], danger["dangerous"])


def density(counts: np.ndarray, area_m2: np.ndarray) -> np.ndarray:
    """Persons per m² of zones × steps (or zones), from head counts and each zone's walkable area."""
    counts, area = np.asarray(counts, dtype=float), np.asarray(area_m2, dtype=float)
    if np.any(area <= 0) or np.any(np.isnan(area)):
        raise InvalidInput("every zone needs a walkable area > 0 m²", field="area_m2")
    if np.any(counts < 0):
        raise InvalidInput("counts of people cannot be negative", field="counts")
    return counts / (area[:, None] if counts.ndim == 2 else area)


def level_of_service(d: np.ndarray, kind: Literal["walkway", "queue"] = "walkway") -> np.ndarray:
    """Fruin LOS letters for densities (persons/m²)."""
    lower = getattr(table(), kind)
    index = np.searchsorted(lower, np.asarray(d, dtype=float), side="right") - 1
    return np.array(list(LOS))[np.clip(index, 0, 5)]


def trend(d: np.ndarray, step_min: float, window: int = 6) -> np.ndarray:
    """Least-squares slope (persons/m² per minute) over each zone's last ``window`` steps."""
    d = np.atleast_2d(np.asarray(d, dtype=float))[:, -window:]
    n = d.shape[1]
    if n < 2:
        return np.zeros(d.shape[0])
    t = (np.arange(n) - (n - 1) / 2) * step_min
    return ((d - d.mean(axis=1, keepdims=True)) * t).sum(axis=1) / (t ** 2).sum()


def minutes_to(threshold: float, current: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """Minutes until ``threshold`` on the straight line: 0 if already there, inf if not rising."""
    current, slope = np.asarray(current, dtype=float), np.asarray(slope, dtype=float)
    with np.errstate(divide="ignore", invalid="ignore"):
        ahead = np.where(slope > 0, (threshold - current) / slope, np.inf)
    return np.where(current >= threshold, 0.0, ahead)


def assess(counts: np.ndarray, area_m2: np.ndarray, step_min: float, *, kind: Literal["walkway", "queue"] = "walkway",
           window: int = 6) -> dict[str, np.ndarray]:
    """Density now, LOS, trend, forecast density and minutes to the warning and dangerous densities."""
    counts = np.atleast_2d(np.asarray(counts, dtype=float))
    if counts.shape[-1] == 0:
        raise InvalidInput("counts are empty: give at least one count per zone", field="counts")
    if step_min <= 0:
        raise InvalidInput("step_minutes must be > 0", field="step_minutes")
    d = density(counts, area_m2)
    now, slope = d[:, -1], trend(d, step_min, window)
    t = table()
    return {
        "density": now, "los": level_of_service(now, kind), "trend_per_min": slope,
        "forecast": {m: np.maximum(now + slope * m, 0.0) for m in FORECAST_MINUTES},
        "minutes_to_warning": minutes_to(t.warning, now, slope),
        "minutes_to_danger": minutes_to(t.dangerous, now, slope),
        "peak_density": d.max(axis=1),
    }


# ── simulation (the virtual city) ─────────────────────────────────────────────────────────

class Zone(BaseModel):
    name: str = Field(min_length=1)
    area_m2: float = Field(gt=0, description="walkable area of the zone")
    start: int = Field(0, ge=0, description="people in the zone at the start")
    inflow_per_min: float = Field(ge=0)
    outflow_per_min: float = Field(0, ge=0, description="people the exits let out per minute")
    lon: float | None = None
    lat: float | None = None


class CrowdScenario(BaseModel):
    """What-if crowd build-up: each zone fills at its inflow and empties at its exits' outflow."""

    zones: list[Zone]
    minutes: int = Field(60, ge=1, le=24 * 60)
    step_minutes: int = Field(1, ge=1, le=60)
    kind: Literal["walkway", "queue"] = "walkway"

    @field_validator("zones")
    @classmethod
    def _zones(cls, value: list[Zone]) -> list[Zone]:
        if not value:
            raise ValueError("give at least one zone")
        return value

    @model_validator(mode="after")
    def _steps(self) -> CrowdScenario:
        if self.minutes < self.step_minutes:
            raise ValueError("minutes must be at least one step")
        return self


def build_up(params: CrowdScenario) -> np.ndarray:
    """Head counts of zones × steps: start + (inflow − outflow) × time, never below 0."""
    times = np.arange(0, params.minutes + params.step_minutes, params.step_minutes, dtype=float)
    start = np.array([z.start for z in params.zones], dtype=float)[:, None]
    net = np.array([z.inflow_per_min - z.outflow_per_min for z in params.zones])[:, None]
    return np.maximum(start + net * times, 0.0)


def simulate(engine: Engine, params: CrowdScenario, progress) -> dict[str, Any]:
    """Run a crowd scenario; pure (reads nothing, writes nothing)."""
    progress(0, 2, "build-up")
    counts = build_up(params)
    area = np.array([z.area_m2 for z in params.zones])
    d = density(counts, area)
    t = table()
    progress(1, 2, "level of service")
    rows = []
    for i, zone in enumerate(params.zones):
        first_warning = _first(d[i] >= t.warning, params.step_minutes)
        first_danger = _first(d[i] >= t.dangerous, params.step_minutes)
        peak = float(d[i].max())
        rows.append({"code": f"zone:{i + 1}", "name_ko": zone.name, "area_m2": zone.area_m2,
                     "peak_people": round(float(counts[i].max())), "peak_density": round(peak, 2),
                     "peak_los": str(level_of_service(peak, params.kind)),
                     "minutes_to_warning": first_warning, "minutes_to_danger": first_danger,
                     "density_series": [round(float(v), 3) for v in d[i]]})
    features = [{"type": "Feature", "geometry": {"type": "Point", "coordinates": [z.lon, z.lat]},
                 "properties": {k: v for k, v in r.items() if k != "density_series"}}
                for z, r in zip(params.zones, rows, strict=True) if z.lon is not None and z.lat is not None]
    progress(2, 2, "done")
    return {
        "summary": {"zones": len(rows), "dangerous_zones": sum(r["minutes_to_danger"] is not None for r in rows),
                    "warning_density_p_m2": t.warning, "dangerous_density_p_m2": t.dangerous,
                    "method": "Fruin (1971) level of service; linear build-up; docs/predictions.md"},
        "areas": rows,
        "features": {"type": "FeatureCollection", "features": features},
    }


def _first(mask: np.ndarray, step_min: int) -> float | None:
    return float(mask.argmax() * step_min) if mask.any() else None


def _simulation():
    try:
        from haechi.simulation.registry import Kind
    except ImportError:
        return None
    return Kind(name="crowd", params=CrowdScenario, run=simulate)


SIMULATION = _simulation()
