"""Warnings in force (and past) for the situation room and the citizen portal."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query

from haechi.store import warnings as store
from haechi.warnings.criteria import CRISIS_KO, load_criteria

from .common import API_PREFIX, AreaCode, Db
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["warnings"], responses=PROBLEM_RESPONSES)


@router.get("/warnings", summary="Warnings · 특보 현황")
def list_warnings(
    engine: Db,
    active: Annotated[bool, Query(description="Only warnings in force")] = True,
    hazard: Annotated[str | None, Query(description="e.g. fine_dust, heavy_rain, river_flood")] = None,
    area: Annotated[AreaCode | None, Query(description="District or dong code prefix")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Warnings with their level on the Korean 4-level crisis scale (관심 · 주의 · 경계 · 심각)."""
    with engine.connect() as conn:
        rows = store.list_warnings(conn, active_only=active, hazard=hazard, area_code=area, limit=limit)
    return [_public(r) for r in rows if not r["exercise"]]


@router.get("/warnings/{warning_id}", summary="One warning · 특보")
def get_warning(engine: Db, warning_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    with engine.connect() as conn:
        return _public(store.get_warning(conn, warning_id))


@router.get("/criteria", summary="Official criteria · 특보 발령 기준")
def criteria() -> list[dict[str, Any]]:
    """Every rule the engine applies, with its value, window, lifting rule and public source."""
    return [{
        "hazard": c.hazard, "level": c.level, "property": c.property, "operator": c.operator, "value": c.value,
        "unit": c.unit, "window": str(c.window), "aggregate": c.aggregate, "persistence": str(c.persistence),
        "lift": f"{c.lift_operator} {c.lift_value:g} for {c.lift_persistence}", "crisis_level": c.crisis_level,
        "crisis_level_ko": CRISIS_KO[c.crisis_level], "scope": c.scope, "source": c.source, "status": c.status,
    } for c in load_criteria()]


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in ("id", "hazard", "area_key", "area_code", "level", "crisis_level", "status",
                                   "value", "unit", "criterion", "exercise")},
            "crisis_level_ko": CRISIS_KO.get(row["crisis_level"]),
            **{k: row[k].isoformat() if row[k] else None for k in ("issued_at", "updated_at", "cancelled_at")}}
