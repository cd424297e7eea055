"""Operators issue, update and cancel alerts by hand, and run drills (Exercise alerts).

Each is a warnings operation (``warnings.manual``): it records the warning and its CAP alert and
publishes ``warning.changed`` and ``alert.sent`` on the app's bus, as the engine does.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from haechi.core.clock import utcnow
from haechi.model.access import Role
from haechi.model.events import AlertSent
from haechi.store import warnings as warning_store
from haechi.store.access import Principal
from haechi.warnings import manual

from .auth import ensure_in_own_area, require
from .common import API_PREFIX, Db, Id
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["alerts"], responses=PROBLEM_RESPONSES)
Issuer = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]


@router.post("/alerts", status_code=201, summary="Issue an alert by hand · 수동 경보 발령")
async def issue_alert(request: Request, engine: Db, body: manual.ManualAlert, who: Issuer) -> JSONResponse:
    """Issue (or update, when one is in force there) a warning and its CAP alert; `exercise` for drills."""
    ensure_in_own_area(who, body.area, "body.area")
    alert = await manual.issue(engine, request.app.state.bus, body, sender=request.app.state.settings.cap_sender,
                               now=utcnow(), actor=who.name)
    return _created(alert)


@router.post("/warnings/{warning_id}/cancel", status_code=201, summary="Cancel a warning · 특보 해제")
async def cancel_warning(request: Request, engine: Db, warning_id: Id,
                         who: Issuer) -> JSONResponse:
    """The all-clear: a CAP Cancel referencing the warning's earlier alerts."""
    await anyio.to_thread.run_sync(_ensure_cancellable_by, engine, who, warning_id)
    alert = await manual.cancel(engine, request.app.state.bus, warning_id,
                                sender=request.app.state.settings.cap_sender, now=utcnow(), actor=who.name)
    return _created(alert)


def _ensure_cancellable_by(engine, who: Principal, warning_id: int) -> None:
    """A district official lifts only warnings of their own district, as they issue only there
    (a city-wide one, or one that spans districts, is the city's to lift)."""
    with engine.connect() as conn:
        area_code = warning_store.get_warning(conn, warning_id)["area_code"]
    ensure_in_own_area(who, area_code, "path.warning_id")


def _created(alert: AlertSent) -> JSONResponse:
    return JSONResponse(dict(alert), status_code=201, headers={"Location": f"{API_PREFIX}/alerts/{alert['id']}"})
