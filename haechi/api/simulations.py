"""What-if simulations of the virtual city (가상도시 시뮬레이션): flood, quake, heat, crowd.

A run is stored as a scenario and computed in the background (202 + Location); its result —
affected areas, facilities, a GeoJSON layer — can be read, cancelled, and compared side by side.
Simulations never change live warnings, observations or state.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field

from haechi.core.errors import Conflict, InvalidInput
from haechi.model.access import Role
from haechi.simulation import runs
from haechi.simulation.registry import kinds
from haechi.store.access import Principal

from .auth import require
from .common import API_PREFIX, Db, Id, Limit, Offset, QueryParams, Record, RequestBody, UtcMoment
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["simulations"], responses=PROBLEM_RESPONSES)

Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]
RunId = Id


class SimulationIn(RequestBody):
    kind: str = Field(pattern=r"^[a-z]{1,16}$", examples=["quake"], description="flood, quake, heat or crowd")
    params: dict[str, Any] = Field(
        description="The kind's scenario (see GET /simulations/kinds)",
        examples=[{"lon": 127.0, "lat": 37.55, "magnitude": 6.0, "depth_km": 10}],
    )


class SimulationFilter(QueryParams):
    kind: str | None = Field(None, pattern=r"^[a-z]{1,16}$")
    limit: Limit = 100
    offset: Offset = 0


class CompareQuery(QueryParams):
    ids: str = Field(pattern=r"^\d+(,\d+)+$", description="Two or more ids, comma-separated", examples=["1,2"])


class Simulation(Record):
    id: int
    kind: str
    params: dict[str, Any]
    status: str
    progress: float
    progress_text: str | None
    cancel_requested: bool
    error: str | None
    created_by: str | None
    created_at: UtcMoment
    started_at: UtcMoment | None
    finished_at: UtcMoment | None


class SimulationWithResult(Simulation):
    result: dict[str, Any] | None


@router.get("/simulations/kinds", summary="Simulation kinds · 시뮬레이션 종류")
def list_kinds(who: Staff) -> dict[str, Any]:
    """Each available kind with the JSON Schema of its scenario input."""
    return {name: kind.params.model_json_schema() for name, kind in sorted(kinds().items())}


@router.post("/simulations", status_code=202, response_model=Simulation,
             summary="Start a simulation · 시뮬레이션 실행")
def start(body: SimulationIn, who: Staff, engine: Db, response: Response) -> dict[str, Any]:
    """Validates the scenario (422 naming the field; refused input is kept as a dead letter), stores
    it as `queued` and runs it in the background. Poll the Location for status and progress."""
    run = runs.submit(engine, body.kind, body.params, f"token:{who.token_id}:{who.name}")
    response.headers["Location"] = f"{API_PREFIX}/simulations/{run['id']}"
    return run


@router.get("/simulations", response_model=list[Simulation], summary="List simulations · 시뮬레이션 목록")
def list_runs(who: Staff, engine: Db, q: Annotated[SimulationFilter, Query()]) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return runs.find(conn, q.kind, limit=q.limit, offset=q.offset)


@router.get("/simulations/compare", summary="Compare simulations · 시나리오 비교")
def compare(who: Staff, engine: Db, q: Annotated[CompareQuery, Query()]) -> dict[str, Any]:
    """Summaries side by side and per-area values with their differences from the first id."""
    ids = [int(i) for i in q.ids.split(",")]
    if len(set(ids)) != len(ids):
        raise InvalidInput("ids repeat; give each simulation once", field="query.ids")
    with engine.connect() as conn:
        return runs.compare([runs.get(conn, i) for i in ids])


@router.get("/simulations/{run_id}", response_model=SimulationWithResult,
            summary="One simulation · 시뮬레이션 상태와 결과")
def get_run(who: Staff, engine: Db, run_id: RunId) -> dict[str, Any]:
    with engine.connect() as conn:
        return runs.get(conn, run_id)


@router.post("/simulations/{run_id}/cancel", response_model=Simulation,
             summary="Cancel a simulation · 시뮬레이션 취소")
def cancel(who: Staff, engine: Db, run_id: RunId) -> dict[str, Any]:
    """Queued runs stop at once, running ones at their next progress step; 409 once finished."""
    with engine.begin() as conn:
        return runs.request_cancel(conn, run_id)


@router.get("/simulations/{run_id}/layer", summary="Map layer of a simulation · 시뮬레이션 지도 레이어",
            response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
def layer(who: Staff, engine: Db, run_id: RunId) -> Response:
    """The result as a GeoJSON FeatureCollection (409 until the run is done)."""
    with engine.connect() as conn:
        run = runs.get(conn, run_id)
        if run["status"] != "done":
            raise Conflict(f"simulation {run_id} is {run['status']}; its layer exists once it is done")
        features = runs.layer(conn, run)
    return Response(json.dumps(features, ensure_ascii=False), media_type="application/geo+json")
