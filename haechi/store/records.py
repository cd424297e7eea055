"""Disaster occurrences, disaster-management projects, citizens' reports and survey results."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Table, insert, select

from haechi.core.errors import NotFound

from .schema import citizen_reports, disasters, projects, report_photos, survey_results
from .sql import row_dict


def _add(conn: Connection, table: Table, row: dict[str, Any]) -> dict[str, Any]:
    new_id = conn.execute(insert(table).values(**row)).inserted_primary_key[0]
    return get(conn, table, new_id)


def get(conn: Connection, table: Table, record_id: int) -> dict[str, Any]:
    row = conn.execute(select(table).where(table.c.id == record_id)).first()
    if row is None:
        raise NotFound(f"no {table.name} record with id {record_id}")
    return row_dict(row)


def add_disaster(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return _add(conn, disasters, row)


def add_project(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return _add(conn, projects, row)


def add_report(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return _add(conn, citizen_reports, row)


def add_survey_result(conn: Connection, row: dict[str, Any]) -> dict[str, Any]:
    return _add(conn, survey_results, row)


def list_disasters(
    conn: Connection,
    *,
    kind: str | None = None,
    area_code: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    c = disasters.c
    query = select(disasters).order_by(c.started_at.desc(), c.id.desc()).limit(limit).offset(offset)
    if kind:
        query = query.where(c.kind == kind)
    if area_code:
        query = query.where(c.area_code.startswith(area_code))
    if since:
        query = query.where(c.started_at >= since)
    if until:
        query = query.where(c.started_at < until)
    return [row_dict(r) for r in conn.execute(query)]


def list_projects(
    conn: Connection, *, phase: str | None = None, area_code: str | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    c = projects.c
    query = select(projects).order_by(c.id).limit(limit).offset(offset)
    if phase:
        query = query.where(c.phase == phase)
    if area_code:
        query = query.where(c.area_code.startswith(area_code))
    return [row_dict(r) for r in conn.execute(query)]


def list_reports(conn: Connection, *, status: str | None = None, limit: int = 100, offset: int = 0):
    c = citizen_reports.c
    query = select(citizen_reports).order_by(c.reported_at.desc(), c.id.desc()).limit(limit).offset(offset)
    if status:
        query = query.where(c.status == status)
    return [row_dict(r) for r in conn.execute(query)]


def get_disaster(conn: Connection, disaster_id: int) -> dict[str, Any]:
    return get(conn, disasters, disaster_id)


def get_project(conn: Connection, project_id: int) -> dict[str, Any]:
    return get(conn, projects, project_id)


def find_reports(
    conn: Connection,
    *,
    status: str | None = None,
    area_code: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[dict[str, Any]]:
    """Citizens' reports, newest first; ``area_code`` keeps those inside an area (prefix match)."""
    c = citizen_reports.c
    newest_first = (c.reported_at.desc(), c.id.desc())
    query = select(citizen_reports).order_by(*newest_first).limit(limit).offset(offset)
    if status:
        query = query.where(c.status == status)
    if area_code:
        query = query.where(c.area_code.startswith(area_code))
    return [row_dict(r) for r in conn.execute(query)]


def get_report(conn: Connection, report_id: int) -> dict[str, Any]:
    return get(conn, citizen_reports, report_id)


def add_photo(conn: Connection, report_id: int, content_type: str, data: bytes, at: datetime) -> dict[str, Any]:
    get_report(conn, report_id)  # a photo needs its report
    new_id = conn.execute(insert(report_photos).values(
        report_id=report_id, content_type=content_type, size_bytes=len(data), data=data, received_at=at,
    )).inserted_primary_key[0]
    return photo_info(conn, report_id, new_id)


def list_photos(conn: Connection, report_id: int) -> list[dict[str, Any]]:
    """A report's photos without their bytes, oldest first."""
    p = report_photos.c
    rows = conn.execute(select(p.id, p.report_id, p.content_type, p.size_bytes, p.received_at)
                        .where(p.report_id == report_id).order_by(p.id))
    return [row_dict(r) for r in rows]


def photo_info(conn: Connection, report_id: int, photo_id: int) -> dict[str, Any]:
    found = [p for p in list_photos(conn, report_id) if p["id"] == photo_id]
    if not found:
        raise NotFound(f"report {report_id} has no photo {photo_id}")
    return found[0]


def photo_bytes(conn: Connection, report_id: int, photo_id: int) -> tuple[str, bytes]:
    p = report_photos.c
    row = conn.execute(select(p.content_type, p.data)
                       .where(p.report_id == report_id, p.id == photo_id)).first()
    if row is None:
        raise NotFound(f"report {report_id} has no photo {photo_id}")
    return row.content_type, bytes(row.data)
