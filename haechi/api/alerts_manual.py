"""Operators issue, update and cancel alerts by hand, and run drills (Exercise alerts)."""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse

from haechi.alerts import manual
from haechi.core.clock import utcnow
from haechi.core.events import Event
from haechi.model.access import Role
from haechi.store.access import Principal

from .auth import ensure_in_own_area, require
from .common import API_PREFIX, Db
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["alerts"], responses=PROBLEM_RESPONSES)
Issuer = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]


@router.post("/alerts", status_code=201, summary="Issue an alert by hand · 수동 경보 발령")
async def issue_alert(request: Request, engine: Db, body: manual.ManualAlert, who: Issuer) -> JSONResponse:
    """Issue (or update, when one is in force there) a warning and its CAP alert; `exercise` for drills."""
    ensure_in_own_area(who, body.area, "body.area")
    sender = request.app.state.settings.cap_sender
    alert = await anyio.to_thread.run_sync(
        lambda: manual.issue(engine, body, sender=sender, now=utcnow(), actor=who.name))
    return await _published(request, alert)


@router.post("/warnings/{warning_id}/cancel", status_code=201, summary="Cancel a warning · 특보 해제")
async def cancel_warning(request: Request, engine: Db, warning_id: Annotated[int, Path(ge=1)],
                         who: Issuer) -> JSONResponse:
    """The all-clear: a CAP Cancel referencing the warning's earlier alerts."""
    sender = request.app.state.settings.cap_sender
    alert = await anyio.to_thread.run_sync(
        lambda: manual.cancel(engine, warning_id, sender=sender, now=utcnow(), actor=who.name))
    return await _published(request, alert)


async def _published(request: Request, alert: dict[str, Any]) -> JSONResponse:
    await request.app.state.bus.publish(Event("alert.sent", alert))
    return JSONResponse(alert, status_code=201, headers={"Location": f"{API_PREFIX}/alerts/{alert['id']}"})
