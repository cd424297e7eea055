"""Operations: health, Prometheus metrics, and the documentation of each problem type."""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
from typing import Annotated

import anyio.to_thread
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

from haechi.core.errors import NotFound
from haechi.store.db import alembic_config

from .problems import CATALOGUE, PROBLEM_RESPONSES, ServiceUnavailable
from .public_cache import Policy, share

log = logging.getLogger(__name__)

router = APIRouter(tags=["system"], responses=PROBLEM_RESPONSES)


class Health(BaseModel):
    status: str = Field(description="`ok` when the DB answers and its schema is current")
    database: str = Field(description="SQL dialect of the integrated DB")
    revision: str | None = Field(description="Schema revision of the DB")
    head: str = Field(description="Newest schema revision this code knows")
    roles: list[str] = Field(description="What this process runs: `api`, and `engine` without a bus")
    leader: bool = Field(description="Whether this process leads the engines (runs warnings, deliveries …)")


#: One readiness check answers for this long: the probes of every load balancer and orchestrator
#: (each every few seconds) share at most one `SELECT 1` a second, and a burst of them never
#: queues on the DB pool. Short beside any probe period, so a DB that goes away is seen at once.
READY_FOR_S = 1.0
#: Probes are answered from memory for as long (a burst of them never reaches the router), and no
#: cache in front may answer one: each must reach this process.
PROBE = Policy("no-store", keep_s=READY_FOR_S)


@functools.cache
def code_head() -> str:
    """The newest schema revision this code knows: read from the Alembic scripts once (a second's work)."""
    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


class Readiness:
    """Whether this process can serve: the integrated DB answers, and its schema is the code's.

    The DB's revision is read at start-up and kept once it is the code's; while it lags it is
    read again (one cheap query) on each check, so `haechi db upgrade` makes a running process
    ready without a restart.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.revision: str | None = None
        self._current = False  # the DB's schema was seen at the code's head
        self._checked_at = -math.inf
        self._problem: str | None = None
        self._lock = threading.Lock()  # checks run in worker threads: one at a time, the others reuse it

    def known(self) -> tuple[bool, str | None]:
        """(whether a check younger than READY_FOR_S stands, its problem): no I/O, for the event loop."""
        return time.monotonic() - self._checked_at < READY_FOR_S, self._problem

    def check(self) -> str | None:
        """None when ready, else why not; at most one check per READY_FOR_S, whoever asks."""
        with self._lock:
            if not self.known()[0]:
                self._problem, self._checked_at = self._check(), time.monotonic()
            return self._problem

    async def problem(self) -> str | None:
        fresh, problem = self.known()
        return problem if fresh else await anyio.to_thread.run_sync(self.check)

    def _check(self) -> str | None:
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
                if not self._current:
                    self.revision = MigrationContext.configure(conn).get_current_revision()
        except SQLAlchemyError as exc:
            log.error("health check: the integrated DB does not answer: %s", exc)
            return "the integrated DB does not answer"
        self._current = self.revision == code_head()
        if not self._current:
            return f"the DB schema is at {self.revision}, the code expects {code_head()}: run `haechi db upgrade`"
        return None


def readiness(request: Request) -> Readiness:
    state = request.app.state
    if not hasattr(state, "readiness"):
        state.readiness = Readiness(state.engine)
    return state.readiness


class Status(BaseModel):
    status: str = Field(description="`ok`")


@router.get("/livez", response_model=Status, summary="Alive · 프로세스 동작 확인")
async def livez(request: Request) -> dict[str, str]:
    """200 while the process runs and its event loop answers: no I/O, for an orchestrator's liveness probe
    (restart when it fails). A DB outage is no reason to restart, so it is not looked at here."""
    share(request, PROBE)
    return {"status": "ok"}


@router.get("/readyz", response_model=Status, summary="Ready · 요청 처리 가능 확인")
async def readyz(request: Request) -> dict[str, str]:
    """200 when the integrated DB answers `SELECT 1` and its schema is the code's, else 503: for a load
    balancer's readiness probe (send no traffic while it fails). Checked at most once a second."""
    problem = await readiness(request).problem()
    if problem is not None:
        raise ServiceUnavailable(problem)
    share(request, PROBE)
    return {"status": "ok"}


@router.get("/healthz", response_model=Health, summary="Health · 상태 확인")
async def healthz(request: Request) -> Health:
    """Readiness (as `/readyz`) with what this process is: its DB, schema revision and roles."""
    ready = readiness(request)
    problem = await ready.problem()
    if problem is not None:
        raise ServiceUnavailable(problem)
    runtime = request.app.state.runtime
    share(request, PROBE)  # the leader flag too is at most a second old
    return Health(status="ok", database=ready.engine.dialect.name, revision=ready.revision, head=code_head(),
                  roles=sorted(runtime.roles), leader=runtime.leading)


@router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {}}, "description": "Prometheus text format"}},
    summary="Prometheus metrics · 운영 지표",
)
def metrics(request: Request) -> Response:
    """Request counts and latency by route template and status, DB gauges, process figures, and this
    process in the cluster: `haechi_process_info{role,name}`, `haechi_leader`, `haechi_consumer_lag{consumer}`."""
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
