"""The warehouse for staff: export and refresh on demand, the lake's state, and mined patterns.

Reading patterns needs an operator's or district official's token (they are aggregates, but
sensor health is operational information); exporting and refreshing is for admins.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request

from haechi.model.access import Role
from haechi.store.access import Principal
from haechi.warehouse import lake as lakes
from haechi.warehouse import marts, patterns

from .auth import AdminOnly, require
from .common import API_PREFIX, Db
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=f"{API_PREFIX}/warehouse", tags=["warehouse"], responses=PROBLEM_RESPONSES)
Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]


def _lake(request: Request) -> Path:
    return Path(request.app.state.settings.lake_dir)


@router.get("/status", summary="Lake watermarks · 레이크 현황")
def status(who: Staff, engine: Db) -> list[dict[str, Any]]:
    """Each dataset's exported rows and files, and rows waiting for the next export."""
    return [{**mark, "pending": lakes.pending(engine, mark["dataset"])} for mark in lakes.watermarks(engine)]


@router.post("/export", summary="Export new rows to the lake · 레이크 내보내기")
async def export(who: AdminOnly, engine: Db, request: Request) -> list[dict[str, Any]]:
    results = await anyio.to_thread.run_sync(lambda: lakes.export(engine, _lake(request)))
    return [vars(r) for r in results]


@router.post("/refresh", summary="Refresh the data marts · 마트 갱신")
async def refresh(who: AdminOnly, request: Request,
                  full: Annotated[bool, Query(description="Recompute every day")] = False) -> dict[str, Any]:
    result = await anyio.to_thread.run_sync(lambda: marts.refresh(_lake(request), full=full))
    return vars(result)


def _mined(request: Request, mine):
    con = marts.connect(_lake(request))
    try:
        return mine(con)
    finally:
        con.close()


@router.get("/patterns/degrading-sensors", summary="Sensors whose quality falls · 품질 저하 센서")
def degrading(who: Staff, request: Request) -> list[dict[str, Any]]:
    return [vars(t) for t in _mined(request, patterns.degrading_sensors)]


@router.get("/patterns/trigger-intensity", summary="Rainfall at which warnings and floods occur · 발생 강우강도")
def trigger_intensity(who: Staff, request: Request) -> list[dict[str, Any]]:
    return _mined(request, patterns.trigger_intensity)


@router.get("/patterns/warning-calendar", summary="When warnings are issued · 특보 발령 시기")
def warning_calendar(who: Staff, request: Request,
                     hazard: Annotated[list[str] | None, Query(max_length=10)] = None) -> dict[str, list]:
    return _mined(request, lambda con: patterns.warning_calendar(con, hazard))


@router.get("/patterns/profiles", summary="Diurnal and seasonal profiles · 일·계절 변화")
def profiles(who: Staff, request: Request,
             prop: Annotated[str, Query(alias="property", pattern=r"^[a-z][a-z0-9_]{0,63}$")]) -> dict[str, Any]:
    found = _mined(request, lambda con: patterns.profiles(con, prop))
    return {str(stream): profile for stream, profile in found.items()}
