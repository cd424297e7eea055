"""Live forecasts (issue 5): run the river and crowd models now, and read the latest forecasts.

Running a model writes its forecasts as observations of their own datastreams and announces them on
the bus, so the warnings service judges them ("expected to exceed"). What-if runs that must not touch
live state are simulations (``/simulations``), not these.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import anyio.to_thread
from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field, field_validator
from sqlalchemy import func, select

from haechi.model.access import Role
from haechi.model.catalogue import catalogue
from haechi.predict import live
from haechi.predict.publish import announce, forecast_properties
from haechi.store.access import Principal
from haechi.store.schema import datastreams, observations, observed_properties

from .auth import require
from .common import API_PREFIX, Db, kept_if_refused
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["predictions"], responses=PROBLEM_RESPONSES)
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]
RUNNERS = {"river": live.forecast_rivers, "crowd": live.forecast_crowds}
DEAD_LETTER_SOURCE = "http:/api/v1/predictions/flood"


async def _run(request: Request, kind: str) -> dict[str, Any]:
    stored = await anyio.to_thread.run_sync(RUNNERS[kind], request.app.state.engine)
    await announce(request.app.state.bus, stored, source=f"predict:{kind}")
    return {"model": kind, "stored": len(stored), "forecasts": stored}


@router.post("/predictions/river", summary="Forecast the Han River gauges now · 수위 예측 실행")
async def run_river(who: Operator, request: Request) -> dict[str, Any]:
    """Forecasts 1, 2 and 3 hours past each modelled gauge's latest reading (linear ARX, docs/predictions.md)."""
    return await _run(request, "river")


@router.post("/predictions/crowd", summary="Forecast crowd densities now · 인파 밀집도 예측 실행")
async def run_crowd(who: Operator, request: Request) -> dict[str, Any]:
    """Forecasts each crowd-density stream 10 minutes ahead from its trend over the last 30 minutes."""
    return await _run(request, "crowd")


class FloodNow(BaseModel):
    forecast_mm: list[float] = Field([], max_length=24 * 6,
                                     description="short-range forecast, mm per 10 minutes, after the observed rain "
                                                 "(at most 24 hours; each within the rain gauges' QC range)")
    hours: int = Field(6, ge=1, le=24, description="hours of observed rain to include")
    level: Literal["dong", "district"] = "dong"


    @field_validator("forecast_mm")
    @classmethod
    def _rain(cls, value: list[float]) -> list[float]:
        most = catalogue()["rainfall"].limits.max  # what a 10-minute gauge can read at all (properties.csv)
        if any(not 0 <= v <= most for v in value):  # NaN fails both
            raise ValueError(f"forecast rainfall must be numbers from 0 to {most:g} mm per 10 minutes")
        return value


@router.post("/predictions/flood", summary="Urban flood risk now · 도시침수 위험 (관측 + 예보 강우)",
             openapi_extra={"requestBody": {"content": {"application/json": {
                 "schema": FloodNow.model_json_schema()}}}})
async def flood_now(request: Request, who: Staff, engine: Db) -> dict[str, Any]:
    """Risk per dong from the rain observed in the last hours plus the forecast given (SCS curve number
    against Seoul's 방재성능목표, docs/predictions.md). Reads only; nothing is stored. Refused input is
    answered with the field at fault and kept in the dead-letter store."""
    raw = await request.body()
    with kept_if_refused(engine, DEAD_LETTER_SOURCE, raw):
        body = FloodNow.model_validate_json(raw or b"{}")
        return await anyio.to_thread.run_sync(
            lambda: live.flood_now(engine, body.forecast_mm, hours=body.hours, level=body.level))


@router.get("/predictions", summary="Latest forecasts · 최근 예측")
def latest(who: Staff, engine: Db) -> list[dict[str, Any]]:
    """The newest forecast of every forecast datastream: property, value, valid and issue time."""
    ds, op, o = datastreams.c, observed_properties.c, observations.c
    newest = (select(o.datastream_id, func.max(o.phenomenon_time).label("t")).group_by(o.datastream_id).subquery())
    query = (select(ds.id, ds.name, ds.area_code, ds.properties, op.code, o.phenomenon_time, o.result, o.result_time)
             .join(observed_properties, op.id == ds.observed_property_id)
             .join(newest, newest.c.datastream_id == ds.id)
             .join(observations, (o.datastream_id == ds.id) & (o.phenomenon_time == newest.c.t))
             .where(op.code.in_(list(forecast_properties()))).order_by(ds.id))
    with engine.connect() as conn:
        return [{"datastream_id": r.id, "name": r.name, "area_code": r.area_code, "property": r.code,
                 "value": r.result, "valid_time": r.phenomenon_time.isoformat(),
                 "issued_at": r.result_time.isoformat() if r.result_time else None,
                 "forecast_of": (r.properties or {}).get("forecast_of")} for r in conn.execute(query)]
