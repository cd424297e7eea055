"""Imports from existing systems over HTTP: the file is the request body, streamed to disk, then imported.

``POST /api/v1/imports/{kind}`` takes the file as sent by the publisher (CSV or JSON, UTF-8 or
CP949); kind ``mapped`` takes its mapping TOML in the ``mapping`` query parameter, kind
``sensorthings`` the service root in ``url`` (no body). Operators and admins only: imports write
the city's reference data and observations.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Any

import anyio.to_thread
from fastapi import APIRouter, Depends, Query, Request
from pydantic import Field

from haechi.core.errors import InvalidInput
from haechi.imports import kinds, run_import
from haechi.imports.runs import list_runs
from haechi.model.access import Role
from haechi.store.access import Principal

from .auth import require
from .common import API_PREFIX, Db, Limit, Record, UtcMoment
from .problems import PROBLEM_RESPONSES

router = APIRouter(prefix=API_PREFIX, tags=["imports"], responses=PROBLEM_RESPONSES)

Importer = Annotated[Principal, Depends(require(Role.OPERATOR))]


class Rejection(Record):
    row: int | None
    field: str | None
    reason: str


class ImportOutcome(Record):
    run_id: int
    kind: str
    source: str
    encoding: str | None
    rows_read: int = Field(description="Rows (or observations, for sensorthings) read")
    rows_accepted: int
    rows_rejected: int = Field(description="Kept with their reason as dead letters import:<kind>")
    rows_duplicate: int = Field(description="Already stored: skipped")
    observations_stored: int
    observations_duplicate: int
    quality: dict[str, int]
    ignored_columns: list[str]
    rejections: list[Rejection] = Field(description="The first 100 rejections")


class ImportRun(Record):
    id: int
    kind: str
    source: str
    actor: str
    started_at: UtcMoment
    finished_at: UtcMoment | None
    status: str
    encoding: str | None
    rows_read: int
    rows_accepted: int
    rows_rejected: int
    rows_duplicate: int
    observations_stored: int
    error: str | None


@router.post("/imports/{kind}", status_code=201, response_model=ImportOutcome,
             summary="Import a file from an existing system · 기존 시스템 자료 가져오기")
async def import_upload(
    kind: str, request: Request, who: Importer, engine: Db,
    filename: Annotated[str, Query(max_length=200, description="The file's name, for the record")] = "upload",
    mapping: Annotated[str | None, Query(max_length=20_000, description="Mapping TOML (kind mapped)")] = None,
    url: Annotated[str | None, Query(max_length=2_000, description="Service root (kind sensorthings)")] = None,
) -> dict[str, Any]:
    if kind not in kinds():
        raise InvalidInput(f"unknown import kind {kind!r}; known: {', '.join(sorted(kinds()))}", field="kind")
    actor = who.name
    if kind == "sensorthings":
        if not url:
            raise InvalidInput("kind sensorthings needs the service root in ?url=", field="url")
        outcome = await anyio.to_thread.run_sync(lambda: run_import(engine, kind, url, actor=actor))
        return outcome.as_dict()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / (Path(filename).name or "upload")
        async with await anyio.open_file(path, "wb") as f:
            async for chunk in request.stream():
                await f.write(chunk)
        options: dict[str, Any] = {}
        if mapping is not None:
            options["mapping"] = Path(folder) / "mapping.toml"
            options["mapping"].write_text(mapping, encoding="utf-8")
        outcome = await anyio.to_thread.run_sync(
            lambda: run_import(engine, kind, str(path), actor=actor, label=filename, **options))
    return outcome.as_dict()


@router.get("/imports", response_model=list[ImportRun], summary="Import runs · 가져오기 기록")
def import_history(who: Importer, engine: Db, kind: Annotated[str | None, Query(max_length=32)] = None,
                   limit: Limit = 100) -> list[dict[str, Any]]:
    with engine.connect() as conn:
        return list_runs(conn, kind=kind, limit=limit)
