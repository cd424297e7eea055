"""What the reports say, read from the integrated DB (the source of truth; marts can lag).

Pure functions (lead times, timelines, month bounds) are separate from the queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, or_, select

from haechi.core.clock import KST, as_utc
from haechi.core.errors import InvalidInput, NotFound
from haechi.store.schema import (
    admin_areas,
    alerts,
    citizen_reports,
    datastreams,
    disasters,
    metadata,
    observations,
    places,
    things,
    warnings,
)

#: Before a disaster starts, warnings this far back still belong to it (they are its early warnings).
LOOKBACK = timedelta(days=2)
#: An event without an end is reported this long after its start.
OPEN_EVENT_SPAN = timedelta(days=3)


# ── Pure ───────────────────────────────────────────────────────────────────────────────


def month_bounds(month: str) -> tuple[datetime, datetime]:
    """The local (KST) month ``YYYY-MM`` as a UTC [start, end) range."""
    try:
        start = datetime.strptime(month, "%Y-%m").replace(tzinfo=KST)
    except ValueError:
        raise InvalidInput(f"month must be YYYY-MM, not {month!r}", field="month") from None
    end = (start + timedelta(days=32)).replace(day=1)
    return as_utc(start), as_utc(end)


def peak(series: list[tuple[datetime, float]], after: datetime) -> tuple[datetime, float] | None:
    """The highest reading at or after ``after`` (the first one if tied)."""
    later = [(t, v) for t, v in series if t >= after and v is not None]
    return max(later, key=lambda p: (p[1], -p[0].timestamp())) if later else None


def lead_time(issued_at: datetime, impact_at: datetime | None) -> timedelta | None:
    """How long before the impact (the peak, or the disaster's start) the warning went out."""
    return None if impact_at is None else impact_at - issued_at


def hours(span: timedelta | None) -> str:
    if span is None:
        return "—"
    total = span.total_seconds() / 3600
    return f"{total:+.1f} h"


def kst(moment: datetime | None) -> str:
    return "—" if moment is None else as_utc(moment).astimezone(KST).strftime("%Y-%m-%d %H:%M KST")


# ── Queries ────────────────────────────────────────────────────────────────────────────


@dataclass
class WarningFact:
    row: dict[str, Any]
    series: list[tuple[datetime, float]] = field(default_factory=list)
    stream_name: str | None = None
    peak: tuple[datetime, float] | None = None
    alerts: list[dict[str, Any]] = field(default_factory=list)

    @property
    def lead_to_peak(self) -> timedelta | None:
        return lead_time(self.row["issued_at"], self.peak[0] if self.peak else None)


def _area_filter(column, area_code: str | None):
    return column.like(f"{area_code}%") if area_code else column.isnot(None) | column.is_(None)


def area(conn: Connection, code: str) -> dict[str, Any]:
    row = conn.execute(select(admin_areas).where(admin_areas.c.code == code)).first()
    if row is None:
        raise NotFound(f"no administrative area {code!r}")
    return dict(row._mapping)


def districts(conn: Connection) -> list[dict[str, Any]]:
    a = admin_areas.c
    return [dict(r._mapping) for r in conn.execute(select(a.code, a.name_ko, a.name_en, a.geometry)
                                                    .where(a.level == "district").order_by(a.code))]


def disaster(conn: Connection, disaster_id: int) -> dict[str, Any]:
    row = conn.execute(select(disasters).where(disasters.c.id == disaster_id)).first()
    if row is None:
        raise NotFound(f"no disaster with id {disaster_id}")
    return dict(row._mapping)


def _stream_districts(conn: Connection) -> dict[int, str | None]:
    return {i: a for i, a in conn.execute(select(datastreams.c.id, datastreams.c.area_code))}


def warnings_between(conn: Connection, start: datetime, end: datetime, area_code: str | None) -> list[WarningFact]:
    """Real (not drill) warnings issued in [start, end) in the area, by the warning's own area or its stream's."""
    w = warnings.c
    rows = [dict(r._mapping) for r in conn.execute(
        select(warnings).where(w.issued_at >= start, w.issued_at < end, w.exercise.is_(False)).order_by(w.issued_at))]
    stream_area = _stream_districts(conn)
    facts = []
    for row in rows:
        codes = [row["area_code"] or "", stream_area.get(row["datastream_id"]) or ""]
        if area_code and not any(c.startswith(area_code) for c in codes if len(c) >= len(area_code)):
            continue
        facts.append(WarningFact(row))
    return facts


def attach_series(conn: Connection, facts: list[WarningFact], start: datetime, end: datetime) -> None:
    """Each warning's triggering stream over [start, end), its peak after issue, and its alerts."""
    for fact in facts:
        stream = _observed(conn, fact.row["datastream_id"])
        if stream is not None:
            o = observations.c
            fact.series = [(as_utc(t), v) for t, v in conn.execute(
                select(o.phenomenon_time, o.result).where(o.datastream_id == stream, o.phenomenon_time >= start,
                                                          o.phenomenon_time < end, o.result_quality != "bad")
                .order_by(o.phenomenon_time))]
            fact.stream_name = conn.execute(select(datastreams.c.name).where(datastreams.c.id == stream)).scalar()
            fact.peak = peak(fact.series, fact.row["issued_at"])
        fact.alerts = [dict(r._mapping) for r in conn.execute(
            select(alerts.c.id, alerts.c.sent, alerts.c.msg_type, alerts.c.crisis_level, alerts.c.status,
                   alerts.c.area_codes)
            .where(alerts.c.warning_id == fact.row["id"]).order_by(alerts.c.sent, alerts.c.id))]


def _observed(conn: Connection, stream: int | None) -> int | None:
    """The stream whose readings show what happened: a forecast's own source, else the stream itself
    (a warning raised on a forecast peaks when the river does, not when the forecast did)."""
    if stream is None:
        return None
    properties = conn.execute(select(datastreams.c.properties).where(datastreams.c.id == stream)).scalar() or {}
    return properties.get("forecast_of") or stream


def alerts_between(conn: Connection, start: datetime, end: datetime, area_code: str | None) -> list[dict[str, Any]]:
    rows = [dict(r._mapping) for r in conn.execute(
        select(alerts.c.id, alerts.c.sent, alerts.c.hazard, alerts.c.msg_type, alerts.c.area_codes)
        .where(alerts.c.sent >= start, alerts.c.sent < end, alerts.c.status == "Actual").order_by(alerts.c.sent))]
    return [r for r in rows if not area_code or any(c.startswith(area_code) for c in r["area_codes"] or [])]


def disasters_between(conn: Connection, start: datetime, end: datetime, area_code: str | None) -> list[dict[str, Any]]:
    d = disasters.c
    query = select(disasters).where(d.started_at >= start, d.started_at < end)
    if area_code:
        query = query.where(or_(d.area_code.like(f"{area_code}%"), d.area_code == area_code[:2]))
    return [dict(r._mapping) for r in conn.execute(query.order_by(d.started_at))]


def report_counts(conn: Connection, start: datetime, end: datetime, area_code: str | None) -> dict[str, int]:
    """Citizen reports by kind: counts only, never their text or who sent them."""
    c = citizen_reports.c
    query = select(c.kind, func.count()).where(c.reported_at >= start, c.reported_at < end)
    if area_code:
        query = query.where(c.area_code.like(f"{area_code}%"))
    return {k: n for k, n in conn.execute(query.group_by(c.kind).order_by(c.kind))}


def incidents_between(conn: Connection, start: datetime, end: datetime, area_code: str | None) -> dict[str, Any] | None:
    """Incidents and 119 response times against the golden time, when the response tables exist."""
    if "incidents" not in metadata.tables or "dispatches" not in metadata.tables:
        return None
    incidents, dispatches = metadata.tables["incidents"], metadata.tables["dispatches"]
    i, d = incidents.c, dispatches.c
    query = select(i.id, i.kind, i.opened_at).where(i.opened_at >= start, i.opened_at < end)
    if area_code:
        query = query.where(i.area_code.like(f"{area_code}%"))
    rows = [dict(r._mapping) for r in conn.execute(query.order_by(i.opened_at))]
    ids = [r["id"] for r in rows]
    responses = [dict(r._mapping) for r in conn.execute(
        select(d.incident_id, d.response_s, d.golden_time_s, d.met_golden_time)
        .where(d.incident_id.in_(ids), d.response_s.isnot(None)))] if ids else []
    met = [r["met_golden_time"] for r in responses if r["met_golden_time"] is not None]
    times = sorted(r["response_s"] for r in responses)
    return {"incidents": rows, "responses": len(times),
            "median_response_s": times[len(times) // 2] if times else None,
            "golden_time_met_share": sum(met) / len(met) if met else None}


def stations_of(conn: Connection, area_code: str | None) -> list[dict[str, Any]]:
    ds, th, pl = datastreams.c, things.c, places.c
    query = (select(ds.id, ds.name, ds.area_code, pl.lon, pl.lat).join(things, th.id == ds.thing_id)
             .outerjoin(places, pl.id == th.place_id))
    if area_code:
        query = query.where(ds.area_code.like(f"{area_code}%"))
    return [dict(r._mapping) for r in conn.execute(query.order_by(ds.id))]


def daily_means(conn: Connection, stream_ids: list[int], start: datetime, end: datetime) -> dict[int, list]:
    """Per stream, (local day, mean of good readings) for the month's days."""
    o = observations.c
    out: dict[int, dict] = {}
    for stream, moment, value in conn.execute(
            select(o.datastream_id, o.phenomenon_time, o.result)
            .where(o.datastream_id.in_(stream_ids), o.phenomenon_time >= start, o.phenomenon_time < end,
                   o.result_quality == "good")):
        day = as_utc(moment).astimezone(KST).date()
        out.setdefault(stream, {}).setdefault(day, []).append(value)
    return {s: sorted((d, sum(v) / len(v)) for d, v in days.items()) for s, days in out.items()}


def timeline(facts: list[WarningFact], event: dict[str, Any] | None,
             incidents: dict[str, Any] | None) -> list[tuple[datetime, str]]:
    """Everything that happened, in order: the event, warnings, alerts, peaks and incidents."""
    items: list[tuple[datetime, str]] = []
    if event:
        items.append((event["started_at"], f"Event starts · 재난 시작: {event['title']}"))
        if event.get("ended_at"):
            items.append((event["ended_at"], "Event ends · 재난 종료"))
    for f in facts:
        w = f.row
        items.append((w["issued_at"], f"{w['hazard']} {w['level']} issued · 발령 ({w['area_key']})"))
        if w.get("cancelled_at"):
            items.append((w["cancelled_at"], f"{w['hazard']} {w['level']} lifted · 해제 ({w['area_key']})"))
        if f.peak:
            items.append((f.peak[0], f"Peak · 최고치 {f.peak[1]:g} {w.get('unit') or ''} ({f.stream_name})"))
        items += [(a["sent"], f"CAP {a['msg_type']} sent · 경보 발송") for a in f.alerts]
    for i in (incidents or {}).get("incidents", []):
        items.append((i["opened_at"], f"Incident · 사건 {i['kind']} #{i['id']}"))
    return sorted(((as_utc(t), text) for t, text in items), key=lambda x: x[0])
