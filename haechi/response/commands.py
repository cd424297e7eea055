"""``haechi incident …`` and ``haechi unit …``: the incident queues and 119 units from a terminal."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from haechi.core.clikit import DatabaseUrl, actor, console, fail
from haechi.core.clock import KST
from haechi.core.errors import HaechiError
from haechi.model.access import Center
from haechi.store import open_engine

from . import dispatch, incidents, repository
from .config import incident_kinds

incident_app = typer.Typer(help="Incidents shared by the three centers (사건: CCTV·상황실·119).", no_args_is_help=True)
unit_app = typer.Typer(help="119 units and their status (소방 출동대).", no_args_is_help=True)
_engine, _actor, _fail = open_engine, actor, fail


def _keep_whole(table: Table, *columns: int) -> None:
    """Statuses and centers are codes an operator types back: never wrap or cut them."""
    for i in columns:
        table.columns[i].no_wrap = True
        table.columns[i].min_width = 14


@incident_app.command("list")
def incident_list(
    center: Annotated[Center | None, typer.Option(help="Only this center's queue.")] = None,
    status: Annotated[str, typer.Option(help="open (not closed), a status, or all.")] = "open",
    database_url: DatabaseUrl = None,
) -> None:
    """A center's queue, newest first (사건 목록)."""
    try:
        with _engine(database_url).connect() as conn:
            rows = incidents.queue(conn, center=center.value if center else None,
                                   status=None if status == "all" else status, limit=1000)
    except HaechiError as exc:
        raise _fail(exc) from exc
    table = Table("id", "kind 유형", "title 제목", "severity", "status 상태", "center 담당", "opened (KST)")
    _keep_whole(table, 4, 5)
    for r in rows:
        kind = incident_kinds().get(r["kind"])
        table.add_row(str(r["id"]), f"{kind.name_ko if kind else r['kind']}", r["title"], r["severity"], r["status"],
                      r["center"], f"{r['opened_at'].astimezone(KST):%Y-%m-%d %H:%M}")
    console.print(table)


@incident_app.command("open")
def incident_open(
    kind: Annotated[str, typer.Option(help="fire, flooding, collapse, sinkhole, … (haechi incident kinds).")],
    lon: Annotated[float, typer.Option(help="Longitude, WGS84.")],
    lat: Annotated[float, typer.Option(help="Latitude, WGS84.")],
    title: Annotated[str, typer.Option(help="What happened, in a line.")],
    severity: Annotated[str, typer.Option(help="low · medium · high · critical")] = "high",
    center: Annotated[Center | None, typer.Option(help="Owning center; the kind's usual one if left out.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Open an incident (사건 등록)."""
    owner = center.value if center else (incident_kinds()[kind].default_center if kind in incident_kinds() else "119")
    try:
        with _engine(database_url).begin() as conn:
            incident = incidents.open_incident(conn, kind=kind, lon=lon, lat=lat, title=title, severity=severity,
                                               center=owner, actor=_actor())
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"incident {incident['id']} opened, owned by {incident['center']} (사건 {incident['id']} 등록)")


@incident_app.command("move")
def incident_move(
    incident_id: int,
    status: Annotated[str, typer.Argument(help="verified · responding · contained · closed")],
    note: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Move an incident along its lifecycle (상태 변경); illegal moves are refused, naming the allowed ones."""
    try:
        with _engine(database_url).begin() as conn:
            incident = incidents.change_status(conn, incident_id, status, actor=_actor(), note=note)
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"incident {incident_id}: {incident['status']}")
    released = [u["call_sign"] for u in incident["released"]["units"]] + [
        f"drone {d['call_sign']}" for d in incident["released"]["drones"]]
    if released:
        console.print(f"released (복귀): {', '.join(released)}")


@incident_app.command("handoff")
def incident_handoff(
    incident_id: int, center: Center,
    note: Annotated[str | None, typer.Option(help="Why, for the history.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Hand an incident to another center (이관); its history stays with it."""
    try:
        with _engine(database_url).begin() as conn:
            incident = incidents.hand_off(conn, incident_id, center.value, actor=_actor(), note=note)
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"incident {incident_id} now owned by {incident['center']}")


@incident_app.command("show")
def incident_show(incident_id: int, database_url: DatabaseUrl = None) -> None:
    """One incident and its history (처리 이력)."""
    try:
        with _engine(database_url).connect() as conn:
            incident = incidents.with_history(conn, incident_id)
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"[bold]{incident['id']} {incident['kind_name_ko']} · {incident['title']}[/bold] — "
                  f"{incident['status']}, {incident['center']}; next: {', '.join(incident['allowed_next']) or '-'}")
    table = Table("time (KST)", "actor", "action", "from", "to", "note")
    for e in incident["history"]:
        table.add_row(f"{e['at'].astimezone(KST):%m-%d %H:%M:%S}", e["actor"], e["action"], e["from_value"] or "",
                      e["to_value"] or "", e["note"] or "")
    console.print(table)


@unit_app.command("list")
def unit_list(
    status: Annotated[str | None, typer.Option(help="available · dispatched · on_scene · returning")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """119 units, their station, status and position (출동대 목록)."""
    with _engine(database_url).connect() as conn:
        rows = repository.find_units(conn, status=status)
    table = Table("id", "call sign 호출부호", "type", "station 소속", "status 상태", "lon", "lat")
    _keep_whole(table, 4)
    for u in rows:
        table.add_row(str(u["id"]), u["call_sign"], u["unit_type"], u["station_name_ko"], u["status"],
                      f"{u['lon']:.5f}" if u["lon"] is not None else "",
                      f"{u['lat']:.5f}" if u["lat"] is not None else "")
    console.print(table)


@unit_app.command("add")
def unit_add(
    call_sign: str,
    unit_type: Annotated[str, typer.Option(help=", ".join(dispatch.UNIT_TYPES))],
    station: Annotated[int, typer.Option(help="Place id of its fire station.")],
    database_url: DatabaseUrl = None,
) -> None:
    """Register a unit at a fire station (출동대 등록)."""
    try:
        with _engine(database_url).begin() as conn:
            unit = dispatch.add_unit(conn, call_sign=call_sign, unit_type=unit_type, station_place_id=station)
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"unit {unit['id']} {unit['call_sign']} at {unit['station_name_ko']}")


@unit_app.command("move")
def unit_move(
    unit_id: int,
    status: Annotated[str, typer.Argument(help="on_scene · returning · available · out_of_service")],
    database_url: DatabaseUrl = None,
) -> None:
    """Change a unit's status (출동대 상태); dispatching is done on an incident."""
    try:
        with _engine(database_url).begin() as conn:
            unit = dispatch.move_unit(conn, unit_id, status, actor=_actor())
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"unit {unit_id} {unit['call_sign']}: {unit['status']}")
