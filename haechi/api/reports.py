"""Citizens' safety reports (시민 안전신고): anyone with a token reports; staff read them.

Reports may carry personal details in their text, so reading them needs an operator's or a
district official's token (district officials see their own area only).
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query, Response
from pydantic import Field

from haechi.core.clock import utcnow
from haechi.model.access import Role
from haechi.store import records
from haechi.store.access import Principal

from .auth import Authenticated, ensure_in_own_area, readable_area, require
from .common import (
    API_PREFIX,
    AreaCode,
    Db,
    Limit,
    Offset,
    OptionalPoint,
    QueryParams,
    Record,
    UtcMoment,
    ensure_area_exists,
)
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["reports"], responses=PROBLEM_RESPONSES)

Staff = Annotated[Principal, Depends(require(Role.OPERATOR, Role.DISTRICT_OFFICIAL))]


class ReportFilter(QueryParams):
    status: str | None = Field(None, max_length=16, examples=["new"])
    area: AreaCode | None = Field(None, description="Only reports inside this area (code prefix)")
    limit: Limit = 100
    offset: Offset = 0


class ReportIn(OptionalPoint):
    kind: str = Field(
        pattern=r"^[a-z][a-z0-9_]{0,31}$",
        description="What is reported, as a short code",
        examples=["pothole", "flooding", "sinkhole", "broken_streetlight"],
    )
    description: str = Field(min_length=1, max_length=5_000)
    area_code: AreaCode | None = None


class Report(Record):
    id: int
    reported_at: UtcMoment
    kind: str
    description: str
    area_code: str | None
    lon: float | None
    lat: float | None
    status: str


class StaffReport(Report):
    reporter_token_id: int | None


@router.post(
    "/reports", status_code=201, response_model=Report, summary="Report a hazard · 안전신고"
)
def add_report(
    body: ReportIn, who: Authenticated, engine: Db, response: Response
) -> dict[str, Any]:
    """Any token may report (citizens are the usual reporters); the report starts as `new`."""
    row = {
        **body.model_dump(),
        "reported_at": utcnow(),
        "status": "new",
        "reporter_token_id": who.token_id,
    }
    with engine.begin() as conn:
        ensure_area_exists(conn, body.area_code, "body.area_code")
        stored = records.add_report(conn, row)
    response.headers["Location"] = f"{API_PREFIX}/reports/{stored['id']}"
    return stored


@router.get("/reports", response_model=list[StaffReport], summary="List reports · 안전신고 목록")
def list_reports(
    who: Staff, engine: Db, q: Annotated[ReportFilter, Query()]
) -> list[dict[str, Any]]:
    """Newest first. Operators and admins see all; district officials their own area."""
    area = readable_area(who, q.area, "query.area")
    with engine.begin() as conn:
        return records.find_reports(
            conn, status=q.status, area_code=area, limit=q.limit, offset=q.offset
        )


@router.get(
    "/reports/{report_id}", response_model=StaffReport, summary="One report · 안전신고 상세"
)
def get_report(who: Staff, engine: Db, report_id: Annotated[int, Path(ge=1)]) -> dict[str, Any]:
    with engine.begin() as conn:
        report = records.get_report(conn, report_id)
    ensure_in_own_area(who, report["area_code"], "path.report_id")
    return report
