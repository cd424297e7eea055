"""The three reports: a district's month, the city's month, and a disaster event's after-action."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from sqlalchemy import Engine

from haechi.core.clock import KST, as_utc

from . import data
from .render import Report, area_map


def _name(area: dict[str, Any]) -> str:
    return f"{area['name_ko']} ({area.get('name_en') or area['code']})"


def _warning_rows(facts: list[data.WarningFact]) -> list[list[Any]]:
    return [[f.row["hazard"], f.row["level"], f.row["area_key"], data.kst(f.row["issued_at"]),
             data.kst(f.row.get("cancelled_at")), data.kst(f.peak[0]) if f.peak else "—",
             data.hours(f.lead_to_peak), len(f.alerts)] for f in facts]


WARNING_HEADER = ["hazard 위험", "level 단계", "area 지역", "issued 발령", "lifted 해제", "peak 최고치 시각",
                  "lead time 선행시간", "CAP alerts 경보"]


def _incident_lines(incidents: dict[str, Any] | None) -> list[str]:
    if incidents is None:
        return ["Incidents and response times: not available (no response tables) · 사건·출동 자료 없음"]
    median = incidents["median_response_s"]
    share = incidents["golden_time_met_share"]
    return [(f"Incidents 사건: {len(incidents['incidents'])}; responses 출동 도착: {incidents['responses']}; "
            f"median response 중앙 출동시간: {'—' if median is None else f'{median / 60:.1f} min'}; "
            f"golden time met 골든타임 준수: {'—' if share is None else f'{share:.0%}'}")]


def _series_figure(facts: list[data.WarningFact], start: datetime, end: datetime) -> plt.Figure | None:
    plotted = [f for f in facts if f.series]
    if not plotted:
        return None
    figure, axes = plt.subplots(len(plotted), 1, figsize=(9, 3 * len(plotted)), squeeze=False)
    for ax, f in zip(axes[:, 0], plotted, strict=True):
        times = [t.astimezone(KST) for t, _ in f.series]
        ax.plot(times, [v for _, v in f.series], color="#0b3d91", linewidth=1)
        threshold = (f.row.get("criterion") or {}).get("value")
        if threshold is not None:
            ax.axhline(threshold, color="#d62728", linestyle="--", linewidth=1, label=f"criterion {threshold:g}")
        ax.axvline(as_utc(f.row["issued_at"]).astimezone(KST), color="#ff7f0e", label="issued")
        if f.row.get("cancelled_at"):
            ax.axvline(as_utc(f.row["cancelled_at"]).astimezone(KST), color="#2ca02c", label="lifted")
        if f.peak:
            ax.plot([f.peak[0].astimezone(KST)], [f.peak[1]], "v", color="#d62728", label="peak")
        ax.set_title(f.stream_name or "")
        ax.set_ylabel(f.row.get("unit") or "")
        ax.xaxis.set_major_formatter(mdates.DateFormatter("%m-%d %H:%M", tz=KST))
        ax.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    return figure


def event_report(engine: Engine, disaster_id: int) -> Report:
    """After-action report: timeline, warnings and their lead times, alerts, incidents, response."""
    with engine.connect() as conn:
        event = data.disaster(conn, disaster_id)
        start = as_utc(event["started_at"]) - data.LOOKBACK
        end = as_utc(event["ended_at"] or event["started_at"] + data.OPEN_EVENT_SPAN)
        where = event["area_code"]
        facts = data.warnings_between(conn, start, end, where)
        data.attach_series(conn, facts, start, end)
        incidents = data.incidents_between(conn, start, end, where)
        areas = data.districts(conn)
        stations = data.stations_of(conn, None)
    report = Report(f"After-action report 사후 검토 보고서: {event['title']}",
                    f"{event['kind']} · {data.kst(event['started_at'])} – {data.kst(event['ended_at'])} · "
                    f"area 지역 {event['area_code'] or '—'}")
    report.summary = [
        (f"Deaths 사망 {event['deaths']}, injuries 부상 {event['injuries']}, missing 실종 {event['missing']}, "
        f"evacuated 대피 {event['evacuated']}"),
        f"Warnings issued 발령 특보: {len(facts)}; CAP alerts sent 발송 경보: {sum(len(f.alerts) for f in facts)}",
    ]
    for f in facts:
        if f.peak:
            report.summary.append(
                f"{f.row['hazard']} {f.row['level']} issued {data.kst(f.row['issued_at'])}, "
                f"{data.hours(f.lead_to_peak)} before the peak 최고치 {f.peak[1]:g} {f.row.get('unit') or ''} "
                f"at {data.kst(f.peak[0])} (lead time 선행시간)")
    report.summary += _incident_lines(incidents)
    report.tables.append(("Warnings and lead times · 특보와 선행시간", WARNING_HEADER, _warning_rows(facts)))
    report.tables.append(("Timeline · 경과", ["time 시각", "what 내용"],
                          [[data.kst(t), text] for t, text in data.timeline(facts, event, incidents)]))
    series = _series_figure(facts, start, end)
    if series is not None:
        report.figures.append(("Warned streams with criterion, issue, lift and peak", series))
    # Shade: the event's area lightly, the districts the warnings' alerts covered darker.
    affected = {a["code"]: 1.0 for a in areas if where and (a["code"].startswith(where) or where.startswith(a["code"]))}
    for f in facts:
        for code in [f.row.get("area_code") or ""] + [c for a in f.alerts for c in a.get("area_codes") or []]:
            if len(code) >= 5 and not code[:5].endswith("000"):
                affected[code[:5]] = 3.0
    points = [(s["lon"], s["lat"], s["name"]) for s in stations
              if s["lon"] is not None and s["id"] in {f.row["datastream_id"] for f in facts}]
    report.figures.append(("Event area (light) and districts alerted (dark), warned stations",
                           area_map(areas, affected, points, "Event area and alerted districts")))
    return report


def district_report(engine: Engine, code: str, month: str) -> Report:
    """Monthly safety report of one district: warnings, alerts, disasters, reports, sensors."""
    start, end = data.month_bounds(month)
    with engine.connect() as conn:
        district = data.area(conn, code)
        facts = data.warnings_between(conn, start, end, code)
        data.attach_series(conn, facts, start, end)
        sent = data.alerts_between(conn, start, end, code)
        events = data.disasters_between(conn, start, end, code)
        reports = data.report_counts(conn, start, end, code)
        incidents = data.incidents_between(conn, start, end, code)
        stations = data.stations_of(conn, code)
        daily = data.daily_means(conn, [s["id"] for s in stations], start, end)
        areas = data.districts(conn)
    report = Report(f"Monthly safety report 월간 안전 보고서: {_name(district)}", f"{month} (KST)")
    report.summary = [
        f"Warnings 특보: {len(facts)}; CAP alerts covering the district 지역 경보: {len(sent)}",
        f"Disasters 재난: {len(events)}; citizen reports 시민 신고: {sum(reports.values())}",
        *_incident_lines(incidents),
        f"Sensor streams 센서: {len(stations)} ({sum(1 for s in stations if s['id'] in daily)} reporting 보고 중)",
    ]
    report.tables.append(("Warnings · 특보", WARNING_HEADER, _warning_rows(facts)))
    report.tables.append(("Disasters · 재난",
                          ["kind 유형", "title 제목", "started 시작", "deaths 사망", "injuries 부상"],
                          [[d["kind"], d["title"], data.kst(d["started_at"]), d["deaths"], d["injuries"]]
                           for d in events]))
    report.tables.append(("Citizen reports by kind (counts only) · 유형별 시민 신고 수", ["kind 유형", "reports 건수"],
                          [[k, n] for k, n in reports.items()]))
    if daily:
        figure, ax = plt.subplots(figsize=(9, 3.5))
        names = {s["id"]: s["name"] for s in stations}
        for stream, days in daily.items():
            ax.plot([d for d, _ in days], [v for _, v in days], marker=".", label=names[stream])
        ax.set_title("Daily mean of good readings")
        ax.legend(fontsize=7)
        figure.autofmt_xdate()
        report.figures.append(("Daily means per sensor stream", figure))
    points = [(s["lon"], s["lat"], s["name"]) for s in stations if s["lon"] is not None]
    report.figures.append(("District and its stations", area_map([a for a in areas if a["code"] == code],
                                                                 {code: 1.0}, points, district.get("name_en") or code)))
    return report


def city_report(engine: Engine, month: str) -> Report:
    """The city's month: warnings per district on a map, and the lists."""
    start, end = data.month_bounds(month)
    with engine.connect() as conn:
        facts = data.warnings_between(conn, start, end, None)
        sent = data.alerts_between(conn, start, end, None)
        events = data.disasters_between(conn, start, end, None)
        reports = data.report_counts(conn, start, end, None)
        incidents = data.incidents_between(conn, start, end, None)
        areas = data.districts(conn)
        stream_area = data._stream_districts(conn)
    per_district: dict[str, float] = {}
    for f in facts:
        code = f.row.get("area_code") or ""
        code = code[:5] if len(code) >= 5 else (stream_area.get(f.row["datastream_id"]) or "")[:5]
        if code:
            per_district[code] = per_district.get(code, 0) + 1
    report = Report("Monthly city safety report 월간 도시 안전 보고서", f"{month} (KST)")
    report.summary = [(f"Warnings 특보: {len(facts)}; CAP alerts 경보: {len(sent)}; disasters 재난: {len(events)}; "
                      f"citizen reports 시민 신고: {sum(reports.values())}"), *_incident_lines(incidents)]
    names = {a["code"]: a["name_ko"] for a in areas}
    report.tables.append(("Warnings per district · 구별 특보", ["district 구", "warnings 특보"],
                          [[f"{names.get(c, c)} ({c})", int(n)] for c, n in sorted(per_district.items())]))
    report.tables.append(("Warnings · 특보", WARNING_HEADER, _warning_rows(facts)))
    report.figures.append(("Warnings per district", area_map(areas, per_district, [], "Warnings per district")))
    return report
