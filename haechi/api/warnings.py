"""Warnings in force (and past) for the situation room and the citizen portal.

The same for everyone, and read by everyone on a disaster day: answered from memory until a
warning or alert event (``public_cache``).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request

from haechi.cities.targeting import UNPLACED
from haechi.core.clock import utcnow
from haechi.model.access import Role
from haechi.model.events import WARNING_ACKNOWLEDGED, event
from haechi.model.hazards import CRISIS_KO
from haechi.store import warnings
from haechi.store.access import Principal
from haechi.warnings.criteria import load_criteria

from .auth import ensure_in_own_area, require
from .common import API_PREFIX, AreaCode, Db, Id
from .problems import PROBLEM_RESPONSES
from .public_cache import FEED, share

Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]

router = APIRouter(prefix=API_PREFIX, tags=["warnings"], responses=PROBLEM_RESPONSES)


@router.get("/warnings", summary="Warnings · 특보 현황")
def list_warnings(
    request: Request,
    engine: Db,
    active: Annotated[bool, Query(description="Only warnings in force")] = True,
    hazard: Annotated[str | None, Query(description="e.g. fine_dust, heavy_rain, river_flood")] = None,
    area: Annotated[AreaCode | None, Query(description="District or dong code prefix")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> list[dict[str, Any]]:
    """Warnings with their level on the Korean 4-level crisis scale (관심 · 주의 · 경계 · 심각)."""
    share(request, FEED)
    with engine.connect() as conn:
        rows = warnings.list_warnings(conn, active_only=active, hazard=hazard, area_code=area, limit=limit)
        return [_public(r) | _reach(conn, r["id"]) for r in rows if not r["exercise"]]


@router.get("/warnings/{warning_id}", summary="One warning · 특보")
def get_warning(request: Request, engine: Db, warning_id: Id) -> dict[str, Any]:
    share(request, FEED)
    with engine.connect() as conn:
        return _public(warnings.get_warning(conn, warning_id)) | _reach(conn, warning_id)


@router.post("/warnings/{warning_id}/acknowledge", summary="Acknowledge a warning · 특보 확인")
async def acknowledge_warning(
    request: Request, who: Staff, engine: Db, warning_id: Id
) -> dict[str, Any]:
    """The situation room has seen this warning and taken charge; every room sees who and when.

    Idempotent: the first acknowledgement stands. A new level clears it (it must be seen again).
    """
    with engine.begin() as conn:
        ensure_in_own_area(who, warnings.get_warning(conn, warning_id)["area_code"], "path.warning_id")
        # Shown to everyone: the center (or role) that took charge, not a person's token name.
        warning = _public(warnings.acknowledge(conn, warning_id, who.center or who.role, utcnow()))
    await request.app.state.bus.publish(event(WARNING_ACKNOWLEDGED, warning))
    return warning


@router.get("/criteria", summary="Official criteria · 특보 발령 기준")
def criteria() -> list[dict[str, Any]]:
    """Every rule the engine applies, with its value, window, lifting rule and public source."""
    return [{
        "hazard": c.hazard, "level": c.level, "property": c.property, "operator": c.operator, "value": c.value,
        "unit": c.unit, "window": str(c.window), "aggregate": c.aggregate, "persistence": str(c.persistence),
        "lift": f"{c.lift_operator} {c.lift_value:g} for {c.lift_persistence}", "crisis_level": c.crisis_level,
        "crisis_level_ko": CRISIS_KO[c.crisis_level], "scope": c.scope, "source": c.source, "status": c.status,
    } for c in load_criteria()]


def _reach(conn, warning_id: int) -> dict[str, Any]:
    """Where the warning's latest alert reaches: its districts (a gauge's buffer may span several)
    and the area as the alert names it, in Korean and English."""
    alert = warnings.latest_alert_of(conn, warning_id)
    if alert is None:
        return {"districts": [], "area_desc": {}}
    infos = alert["cap_json"].get("info") or []
    infos = infos if isinstance(infos, list) else [infos]
    desc = {i["language"]: "; ".join(a.get("areaDesc", "") for a in i.get("area", [])) for i in infos
            if i.get("language") in ("ko-KR", "en-US")}
    districts = sorted({c[:5] for c in alert["area_codes"] or [] if len(c) == 10 and c[5:] == "00000"})
    return {"districts": districts, "area_desc": desc}


def _unplaced(code: str | None) -> dict[str, str] | None:
    """Why a warning has no district (it is kept and shown all the same), in Korean and English."""
    if not code:
        return None
    ko, en = UNPLACED.get(code, (code, code))
    return {"code": code, "ko": ko, "en": en}


def _public(row: dict[str, Any]) -> dict[str, Any]:
    return {**{k: row[k] for k in ("id", "hazard", "area_key", "area_code", "level", "crisis_level", "status",
                                   "value", "unit", "criterion", "exercise")},
            "crisis_level_ko": CRISIS_KO.get(row["crisis_level"]),
            "acknowledged_by": row["acknowledged_by"],
            "unplaced": _unplaced(row.get("unplaced")),
            **{k: row[k].isoformat() if row[k] else None
               for k in ("issued_at", "updated_at", "cancelled_at", "acknowledged_at")}}
