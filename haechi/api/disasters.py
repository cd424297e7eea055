"""Disaster occurrences (재난 이력): natural and social, with time, place, damage and casualties."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field, ValidationInfo, field_validator

from haechi.model.access import CITY_EDITORS
from haechi.model.city import DisasterCategory, DisasterKind
from haechi.store import records
from haechi.store.access import Principal

from .auth import ensure_in_own_area, require
from .common import (
    API_PREFIX,
    MAX_BIGINT,
    MAX_INTEGER,
    AreaCode,
    Db,
    Id,
    Limit,
    Moment,
    Offset,
    OptionalPoint,
    QueryParams,
    Record,
    UtcMoment,
    ensure_area_exists,
)
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["disasters"], responses=PROBLEM_RESPONSES)

Editor = Annotated[Principal, Depends(require(*CITY_EDITORS))]
Count = Annotated[int, Field(ge=0, le=MAX_INTEGER, description="Persons")]


class DisasterFilter(QueryParams):
    kind: DisasterKind | None = None
    area: AreaCode | None = Field(None, description="Only disasters inside this area (code prefix)")
    since: Moment | None = Field(None, description="Started at or after (ISO 8601 with offset)")
    until: Moment | None = Field(None, description="Started before (ISO 8601 with offset)")
    limit: Limit = 100
    offset: Offset = 0

    @field_validator("until")
    @classmethod
    def _until_after_since(cls, until: Any, info: ValidationInfo) -> Any:
        since = info.data.get("since")
        if until is not None and since is not None and until <= since:
            raise ValueError("until must be later than since")
        return until


class DisasterIn(OptionalPoint):
    """One occurrence; its category (natural or social) follows from its kind."""

    kind: DisasterKind
    title: str = Field(min_length=1, max_length=300)
    started_at: Moment
    ended_at: Moment | None = None
    area_code: AreaCode | None = None
    deaths: Count = 0
    injuries: Count = 0
    missing: Count = 0
    evacuated: Count = 0
    damage_krw: int | None = Field(None, ge=0, le=MAX_BIGINT, description="Property damage in Korean won")
    description: str | None = Field(None, max_length=10_000)
    source: str | None = Field(None, max_length=300)

    @field_validator("ended_at")
    @classmethod
    def _ends_after_start(cls, ended_at: Any, info: ValidationInfo) -> Any:
        started_at = info.data.get("started_at")
        if ended_at is not None and started_at is not None and ended_at < started_at:
            raise ValueError("ended_at must not be before started_at")
        return ended_at


class Disaster(Record):
    id: int
    category: DisasterCategory
    kind: DisasterKind
    title: str
    started_at: UtcMoment
    ended_at: UtcMoment | None
    area_code: str | None
    lon: float | None
    lat: float | None
    deaths: int
    injuries: int
    missing: int
    evacuated: int
    damage_krw: int | None
    description: str | None
    source: str | None


@router.get("/disasters", response_model=list[Disaster], summary="List disasters · 재난 이력 목록")
def list_disasters(engine: Db, q: Annotated[DisasterFilter, Query()]) -> list[dict[str, Any]]:
    """Occurrences, latest start first."""
    with engine.begin() as conn:
        return records.list_disasters(
            conn,
            kind=q.kind,
            area_code=q.area,
            since=q.since,
            until=q.until,
            limit=q.limit,
            offset=q.offset,
        )


@router.get(
    "/disasters/{disaster_id}", response_model=Disaster, summary="One disaster · 재난 이력 상세"
)
def get_disaster(engine: Db, disaster_id: Id) -> dict[str, Any]:
    with engine.begin() as conn:
        return records.get_disaster(conn, disaster_id)


@router.post(
    "/disasters",
    status_code=201,
    response_model=Disaster,
    summary="Record a disaster · 재난 이력 등록",
)
def add_disaster(body: DisasterIn, who: Editor, engine: Db, response: Response) -> dict[str, Any]:
    """Admins, operators and district officials (inside their own area) may record occurrences."""
    ensure_in_own_area(who, body.area_code, "body.area_code")
    row = {**body.model_dump(), "category": DisasterKind(body.kind).category.value}
    with engine.begin() as conn:
        ensure_area_exists(conn, body.area_code, "body.area_code")
        stored = records.add_disaster(conn, row)
    response.headers["Location"] = f"{API_PREFIX}/disasters/{stored['id']}"
    return stored
