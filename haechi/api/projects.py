"""Disaster-management projects (재난관리 사업): prevention, preparation, response, recovery."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import Field, ValidationInfo, field_validator

from haechi.model.access import Role
from haechi.model.city import ProjectPhase
from haechi.store import records
from haechi.store.access import Principal

from .auth import ensure_in_own_area, require
from .common import (
    API_PREFIX,
    MAX_BIGINT,
    AreaCode,
    Db,
    Id,
    Limit,
    Offset,
    QueryParams,
    Record,
    RequestBody,
    ensure_area_exists,
)
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["projects"], responses=PROBLEM_RESPONSES)

ProjectEditor = Annotated[Principal, Depends(require(Role.DISTRICT_OFFICIAL))]


class ProjectFilter(QueryParams):
    phase: ProjectPhase | None = None
    area: AreaCode | None = Field(None, description="Only projects inside this area (code prefix)")
    limit: Limit = 100
    offset: Offset = 0


class ProjectIn(RequestBody):
    phase: ProjectPhase
    title: str = Field(min_length=1, max_length=300)
    area_code: AreaCode | None = None
    budget_krw: int | None = Field(None, ge=0, le=MAX_BIGINT, description="Budget in Korean won")
    start_date: date | None = None
    end_date: date | None = None
    evaluation_score: float | None = Field(None, ge=0, le=100, description="Evaluation, 0–100")
    evaluation: str | None = Field(None, max_length=10_000)
    source: str | None = Field(None, max_length=300)

    @field_validator("end_date")
    @classmethod
    def _ends_after_start(cls, end_date: date | None, info: ValidationInfo) -> date | None:
        start_date = info.data.get("start_date")
        if end_date is not None and start_date is not None and end_date < start_date:
            raise ValueError("end_date must not be before start_date")
        return end_date


class Project(Record):
    id: int
    phase: ProjectPhase
    title: str
    area_code: str | None
    budget_krw: int | None
    start_date: date | None
    end_date: date | None
    evaluation_score: float | None
    evaluation: str | None
    source: str | None


@router.get("/projects", response_model=list[Project], summary="List projects · 재난관리 사업 목록")
def list_projects(engine: Db, q: Annotated[ProjectFilter, Query()]) -> list[dict[str, Any]]:
    with engine.begin() as conn:
        return records.list_projects(
            conn, phase=q.phase, area_code=q.area, limit=q.limit, offset=q.offset
        )


@router.get(
    "/projects/{project_id}", response_model=Project, summary="One project · 재난관리 사업 상세"
)
def get_project(engine: Db, project_id: Id) -> dict[str, Any]:
    with engine.begin() as conn:
        return records.get_project(conn, project_id)


@router.post(
    "/projects", status_code=201, response_model=Project, summary="Record a project · 사업 등록"
)
def add_project(
    body: ProjectIn, who: ProjectEditor, engine: Db, response: Response
) -> dict[str, Any]:
    """Admins and district officials (inside their own area) may record projects."""
    ensure_in_own_area(who, body.area_code, "body.area_code")
    with engine.begin() as conn:
        ensure_area_exists(conn, body.area_code, "body.area_code")
        stored = records.add_project(conn, body.model_dump())
    response.headers["Location"] = f"{API_PREFIX}/projects/{stored['id']}"
    return stored
