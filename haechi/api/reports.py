"""Citizens' safety reports (시민 안전신고): anyone with a token reports; staff read them.

Reports may carry personal details in their text, so reading them needs an operator's or a
district official's token (district officials see their own area only).
"""

from __future__ import annotations

from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request, Response
from pydantic import Field

from haechi.core.clock import utcnow
from haechi.core.errors import Forbidden, InvalidInput
from haechi.model.access import Role
from haechi.model.images import SIGNATURES, image_type
from haechi.store import deadletters, records
from haechi.store.access import Principal

from .auth import Authenticated, ensure_in_own_area, readable_area, require
from .common import (
    API_PREFIX,
    AreaCode,
    Db,
    Id,
    Limit,
    Offset,
    OptionalPoint,
    QueryParams,
    Record,
    UtcMoment,
    ensure_area_exists,
    kept_if_refused,
)
from .problems import PROBLEM_RESPONSES
from .shedding import RATE_LIMITED

router = APIRouter(prefix=API_PREFIX, tags=["reports"], responses=PROBLEM_RESPONSES)

STAFF_ROLES = (Role.ADMIN, Role.OPERATOR, Role.DISTRICT_OFFICIAL)
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
    "/reports", status_code=201, response_model=Report, summary="Report a hazard · 안전신고", responses=RATE_LIMITED,
    openapi_extra={"requestBody": {"required": True, "content": {
        "application/json": {"schema": ReportIn.model_json_schema(ref_template="#/components/schemas/{model}")}}}},
)
async def add_report(request: Request, who: Authenticated, engine: Db, response: Response) -> dict[str, Any]:
    """Any token may report (citizens are the usual reporters); the report starts as `new`.

    Each address may send a few reports at once and one every few seconds after
    (`haechi/api/shedding.toml`); beyond that the answer is 429 with `Retry-After`, and the
    report is not taken. Staff tokens are not limited.

    A refused report is answered with the fields at fault and kept, with its reason, in the
    dead-letter store, so what a citizen typed is never lost.
    """
    raw = await request.body()
    stored = await anyio.to_thread.run_sync(_add_report, engine, raw, who.token_id)
    response.headers["Location"] = f"{API_PREFIX}/reports/{stored['id']}"
    return stored


def _add_report(engine, raw: bytes, token_id: int | None) -> dict[str, Any]:
    with kept_if_refused(engine, "http:/api/v1/reports", raw):
        body = ReportIn.model_validate_json(raw)
        with engine.begin() as conn:
            ensure_area_exists(conn, body.area_code, "body.area_code")
    row = {**body.model_dump(), "reported_at": utcnow(), "status": "new", "reporter_token_id": token_id}
    with engine.begin() as conn:
        return records.add_report(conn, row)


@router.post("/reports/{report_id}/photos", status_code=201, summary="Attach a photo · 신고 사진 첨부",
             responses=RATE_LIMITED,
             openapi_extra={"requestBody": {"required": True, "content": {
                 m: {"schema": {"type": "string", "format": "binary"}} for m in SIGNATURES}}})
async def add_photo(
    request: Request, who: Authenticated, engine: Db, report_id: Id, response: Response
) -> dict[str, Any]:
    """The body is the image itself (JPEG, PNG or WebP), sent by the reporter or by staff."""
    data = await request.body()
    photo = await anyio.to_thread.run_sync(_add_photo, engine, who, report_id, data,
                                           request.headers.get("content-type"))
    response.headers["Location"] = f"{API_PREFIX}/reports/{report_id}/photos/{photo['id']}"
    return photo


def _add_photo(engine, who: Principal, report_id: int, data: bytes, content_type: str | None) -> dict[str, Any]:
    with engine.connect() as conn:
        report = records.get_report(conn, report_id)
    if report["reporter_token_id"] != who.token_id and who.role not in STAFF_ROLES:
        raise Forbidden("only the reporter or staff may add photos to a report", field="path.report_id")
    try:
        kind = image_type(data, content_type)
    except InvalidInput as exc:  # kept with what can be said about it (not the bytes)
        with engine.begin() as conn:
            deadletters.keep(conn, f"http:/api/v1/reports/{report_id}/photos", f"{exc.field}: {exc.detail}",
                             f"{len(data)} bytes, Content-Type {content_type!r}")
        raise
    with engine.begin() as conn:
        return records.add_photo(conn, report_id, kind, data, utcnow())


@router.get("/reports/{report_id}/photos", summary="A report's photos · 신고 사진 목록")
def list_photos(who: Staff, engine: Db, report_id: Id) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        ensure_in_own_area(who, records.get_report(conn, report_id)["area_code"], "path.report_id")
        return records.list_photos(conn, report_id)


@router.get("/reports/{report_id}/photos/{photo_id}", summary="One photo · 신고 사진",
            response_class=Response, responses={200: {"content": {m: {} for m in SIGNATURES}}})
def get_photo(
    who: Staff, engine: Db, report_id: Id, photo_id: Id
) -> Response:
    """Staff only: photos may show people and homes."""
    with engine.begin() as conn:
        ensure_in_own_area(who, records.get_report(conn, report_id)["area_code"], "path.report_id")
        kind, data = records.photo_bytes(conn, report_id, photo_id)
    return Response(data, media_type=kind, headers={"Cache-Control": "private, max-age=3600"})


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
def get_report(who: Staff, engine: Db, report_id: Id) -> dict[str, Any]:
    with engine.begin() as conn:
        report = records.get_report(conn, report_id)
    ensure_in_own_area(who, report["area_code"], "path.report_id")
    return report
