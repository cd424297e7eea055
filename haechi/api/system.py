"""Operations: health, Prometheus metrics, and the documentation of each problem type."""

from __future__ import annotations

import logging
from typing import Annotated

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from haechi.core.errors import NotFound
from haechi.store.db import revision_info

from .common import Db
from .problems import CATALOGUE, PROBLEM_RESPONSES, ServiceUnavailable

log = logging.getLogger(__name__)

router = APIRouter(tags=["system"], responses=PROBLEM_RESPONSES)


class Health(BaseModel):
    status: str = Field(description="`ok` when the DB answers and its schema is current")
    database: str = Field(description="SQL dialect of the integrated DB")
    revision: str | None = Field(description="Schema revision of the DB")
    head: str = Field(description="Newest schema revision this code knows")


@router.get("/healthz", response_model=Health, summary="Health · 상태 확인")
def healthz(engine: Db) -> Health:
    """200 when the integrated DB answers `SELECT 1` and its schema is up to date, else 503."""
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        current, head = revision_info(engine)
    except SQLAlchemyError as exc:
        log.error("health check: the integrated DB does not answer: %s", exc)
        raise ServiceUnavailable("the integrated DB does not answer") from None
    if current != head:
        raise ServiceUnavailable(
            f"the DB schema is at {current}, the code expects {head}: run `haechi db upgrade`"
        )
    return Health(status="ok", database=engine.dialect.name, revision=current, head=head)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics · 운영 지표",
)
def metrics(request: Request) -> Response:
    """Request counts and latency by route template and status, DB gauges, process figures."""
    body, media_type = request.app.state.metrics.exposition()
    return Response(body, media_type=media_type)


class ProblemTypeDoc(BaseModel):
    type: str
    status: int
    title: dict[str, str]
    description: dict[str, str]


@router.get(
    "/problems/{slug}", response_model=ProblemTypeDoc, summary="A problem type · 오류 유형 설명"
)
def problem_type(slug: Annotated[str, Path(max_length=64)]) -> ProblemTypeDoc:
    """What a `type` URI of a problem+json answer means, in English and Korean."""
    kind = CATALOGUE.get(slug)
    if kind is None:
        raise NotFound(f"no problem type {slug!r}; known: {', '.join(sorted(CATALOGUE))}")
    return ProblemTypeDoc(
        type=kind.uri,
        status=kind.status,
        title={"en": kind.title_en, "ko": kind.title_ko},
        description={"en": kind.about_en, "ko": kind.about_ko},
    )
