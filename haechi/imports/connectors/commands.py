"""``haechi connect list | run [NAME] | status``: the live public feeds by hand."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer
from rich.table import Table

from haechi.core.clikit import DatabaseUrl, actor, console

connect_app = typer.Typer(help="Live public feeds (AirKorea, KMA, HRFCO, S-DoT) · 공공 실시간 자료 연계",
                          no_args_is_help=True)

#: The HTTP transport runs use; None is the SSRF-safe default (tests serve recorded answers here).
TRANSPORT = None


def _feeds():
    from .feeds import feeds

    return feeds()


@connect_app.command("list")
def list_connectors() -> None:
    """The connectors, their APIs, intervals and keys · 연계 목록"""
    from .runner import missing_key

    table = Table(title="connectors · 연계")
    for column in ("name", "API", "place kind", "every", "key · 인증키"):
        table.add_column(column)
    for name, feed in _feeds().items():
        key = "set · 설정됨" if feed.key() else missing_key(feed)
        table.add_row(name, feed.config["title"], feed.place_kind, f"{feed.interval_s / 60:g} min", key)
    console.print(table)


@connect_app.command("run")
def run(
    name: Annotated[str | None, typer.Argument(help="One connector; all with a key when omitted")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run connectors now: fetch what is new (and any gap), store it once · 지금 가져오기"""
    from haechi.core.settings import get_settings
    from haechi.ingest.pipeline import Pipeline
    from haechi.store import open_db

    from .runner import run_feed

    feeds = _feeds()
    if name is not None and name not in feeds:
        console.print(f"[red]error (name):[/red] unknown connector {name!r}; known: {', '.join(feeds)}")
        raise typer.Exit(2)
    chosen = [feeds[name]] if name else [f for f in feeds.values() if f.key()]
    if not chosen:
        console.print("no connector has a service key set · 인증키가 설정된 연계가 없습니다 (haechi connect list)")
        raise typer.Exit(1)
    engine = open_db(database_url or get_settings().database_url)
    try:
        pipeline = Pipeline(engine)
        reports = [asyncio.run(run_feed(f, engine, pipeline, transport=TRANSPORT, actor=actor())) for f in chosen]
    finally:
        engine.dispose()
    console.print(_reports(reports))
    if any(r.status not in ("ok", "empty") for r in reports):
        raise typer.Exit(1)


def _reports(reports) -> Table:
    table = Table(title="connector runs · 연계 실행")
    for column in ("name", "status · 상태", "requests", "records", "stored · 저장", "duplicates · 중복",
                   "rejected · 거부", "detail · 사유"):
        table.add_column(column)
    for r in reports:
        table.add_row(r.connector, _status(r.status), str(r.requests), str(r.records), str(r.stored),
                      str(r.duplicates), str(r.rejected), r.detail or "")
    return table


def _status(status: str) -> str:
    colour = {"ok": "green", "empty": "yellow", "disabled": "dim"}.get(status, "red")
    return f"[{colour}]{status}[/{colour}]"


@connect_app.command("status")
def status(database_url: DatabaseUrl = None) -> None:
    """Each connector's last run, its stations and how fresh they are · 연계 상태"""
    from haechi.core.settings import get_settings
    from haechi.store import open_db

    from . import state
    from .runner import missing_key

    engine = open_db(database_url or get_settings().database_url)
    try:
        with engine.connect() as conn:
            runs, stations = state.statuses(conn), state.station_counts(conn)
    finally:
        engine.dispose()
    table = Table(title="connector status · 연계 상태")
    for column in ("name", "key · 인증키", "last run · 최근 실행", "status · 상태", "stored · 저장", "stations · 지점",
                   "newest · 최신 관측", "detail · 사유"):
        table.add_column(column)
    for name, feed in _feeds().items():
        run_, (count, _oldest, newest) = runs.get(name, {}), stations.get(name, (0, None, None))
        table.add_row(name, "set" if feed.key() else missing_key(feed), _when(run_.get("run_at")),
                      _status(run_["status"]) if run_ else "never run · 실행 전", str(run_.get("stored", "")),
                      str(count), _when(newest), run_.get("detail") or "")
    console.print(table)


def _when(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else ""
