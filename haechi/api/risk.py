"""Regional risk index (지역 위험도 평가): a choropleth layer and the ranked table behind it.

Aggregate statistics only (no personal data), so any token may read it. The method, the missing
indicators and the sensitivity analysis travel with every table.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import Field

from haechi import risk
from haechi.store import areas

from .auth import Authenticated
from .common import API_PREFIX, Db, QueryParams
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["risk"], responses=PROBLEM_RESPONSES)


class RiskQuery(QueryParams):
    level: Literal["district", "dong"] = "dong"
    flood: int | None = Field(None, ge=1,
                              description="Flood simulation id for the flood hazard (latest done if left out)")
    quake: int | None = Field(None, ge=1,
                              description="Quake simulation id for the earthquake hazard (latest done if left out)")


class RankQuery(RiskQuery):
    sensitivity: bool = Field(True, description="Include the weight-sensitivity analysis")


def _chosen(q: RiskQuery) -> dict[str, int]:
    return {k: v for k, v in (("flood", q.flood), ("quake", q.quake)) if v is not None}


@router.get("/risk", summary="Risk index map layer · 위험도 지도 레이어", response_class=Response,
            responses={200: {"content": {"application/geo+json": {}}}})
def risk_layer(who: Authenticated, engine: Db, q: Annotated[RiskQuery, Query()]) -> Response:
    """A GeoJSON FeatureCollection: each district or dong with its rank, risk (1–10) and dimension scores."""
    with engine.connect() as conn:
        table = risk.assess(conn, q.level, simulation_ids=_chosen(q), with_sensitivity=False)
        geometries = {a["code"]: a["geometry"] for a in areas.list_areas(conn, level=q.level, geometry=True)}
    body = json.dumps(risk.geojson(table, geometries), ensure_ascii=False)
    return Response(body, media_type="application/geo+json")


@router.get("/risk/rank", summary="Ranked risk table · 위험도 순위")
def risk_rank(who: Authenticated, engine: Db, q: Annotated[RankQuery, Query()]) -> dict[str, Any]:
    """Areas ranked by risk with indicator values, the method, missing indicators and sensitivity."""
    with engine.connect() as conn:
        return risk.assess(conn, q.level, simulation_ids=_chosen(q), with_sensitivity=q.sensitivity)
