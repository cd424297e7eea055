"""The ``haechi`` command: serve, demo, city packs, database, tokens and every capability's commands."""

from __future__ import annotations

import gc
import sys
from typing import Annotated

import typer
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from haechi.core.clikit import DatabaseUrl, actor, console, fail
from haechi.core.errors import HaechiError
from haechi.core.settings import get_settings
from haechi.model.access import Center, Role
from haechi.runtime.parts import commands as capability_commands
from haechi.simulation.commands import install as install_simulations
from haechi.store import open_engine

app = typer.Typer(help="Haechi — urban safety integrated platform (도시안전 통합플랫폼).", no_args_is_help=True)
city_app = typer.Typer(help="City packs: boundaries, statistics and places (도시 데이터 팩).", no_args_is_help=True)
db_app = typer.Typer(help="The integrated database (통합DB).", no_args_is_help=True)
token_app = typer.Typer(help="API tokens and roles (API 토큰).", no_args_is_help=True)
app.add_typer(city_app, name="city")
app.add_typer(db_app, name="db")
app.add_typer(token_app, name="token")
deadletter_app = typer.Typer(help="Refused input kept with its reason (거부된 입력).", no_args_is_help=True)
app.add_typer(deadletter_app, name="deadletter")
alert_app = typer.Typer(help="Alerts by hand and drills (수동 경보 · 훈련).", no_args_is_help=True)
app.add_typer(alert_app, name="alert")
cluster_app = typer.Typer(help="The processes of this installation: roles, leader, lag (클러스터).",
                          no_args_is_help=True)
app.add_typer(cluster_app, name="cluster")
simulate_app = typer.Typer(help="What-if simulations and simulated devices (가상 도시 시뮬레이션 · 가상 센서).",
                           no_args_is_help=True)
app.add_typer(simulate_app, name="simulate")
install_simulations(simulate_app)  # simulate quake|flood|heat|crowd: the virtual city (issue 5)
for _name, _commands in capability_commands():  # risk, care, import, incident, unit, roads, lake, mart, report
    app.add_typer(_commands, name=_name)

_engine, _actor, _fail = open_engine, actor, fail


# ── city ─────────────────────────────────────────────────────────────────────────────────


@city_app.command("list")
def city_list() -> None:
    """List the built-in city packs."""
    from haechi.cities import BUILTIN, builtin_packs
    from haechi.cities.pack import read_manifest

    table = Table("pack", "city", "도시", "code")
    for name in builtin_packs():
        info = read_manifest(BUILTIN / name).city
        table.add_row(name, info.name_en, info.name_ko, info.code)
    console.print(table)


@city_app.command("load")
def city_load(
    pack: Annotated[str, typer.Argument(help="A built-in pack name (seoul) or a folder with pack.toml.")] = "seoul",
    database_url: DatabaseUrl = None,
) -> None:
    """Load a city pack into the integrated DB (idempotent: loading twice changes nothing)."""
    load_with_progress(_engine(database_url), pack)


def load_with_progress(engine, pack: str):
    from haechi.cities.load import load_city
    from haechi.store import access

    columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
               TimeElapsedColumn())
    try:
        with Progress(*columns, console=console, transient=True) as bar:
            task = bar.add_task(f"city pack {pack}", total=1)
            report = load_city(
                engine, pack, lambda step, done, total: bar.update(task, description=step, completed=done, total=total)
            )
    except HaechiError as exc:
        raise _fail(exc) from exc
    with engine.begin() as conn:
        access.record(conn, _actor(), "city.load", target=pack, detail={"areas": report.areas})
    areas = ", ".join(f"{n} {level}" for level, n in report.areas.items())
    places = ", ".join(f"{n} {kind}" for kind, n in sorted(report.places.items()))
    console.print(f"[green]loaded[/green] {report.city}: {areas}; {report.statistics} statistics rows; {places}")
    if report.outside:
        console.print(f"[yellow]{len(report.outside)} places lie outside the boundaries[/yellow]: "
                      f"{', '.join(report.outside[:10])}")
    for line in report.external:
        console.print(f"places read from outside the pack (not shipped in it, see its SOURCES.md): {line}")
    for line in report.missing:
        console.print(f"[yellow]places not loaded[/yellow]: {line}")
    if report.official_area_km2:
        gap = report.area_km2 / report.official_area_km2 - 1
        console.print(f"district area {report.area_km2:.1f} km² "
                      f"vs official {report.official_area_km2} km² ({gap:+.2%})")
    from haechi.roads.city_pack import install  # the pack's road network into the road graph (docs/roads.md)

    console.print(install(pack, get_settings().road_graph).message)
    return report


# ── db ───────────────────────────────────────────────────────────────────────────────────


@db_app.command("upgrade")
def db_upgrade(database_url: DatabaseUrl = None) -> None:
    """Create or migrate the schema to the newest revision."""
    engine = _engine(database_url)
    console.print(f"[green]up to date[/green] at {engine.url.render_as_string(hide_password=True)}")


@db_app.command("info")
def db_info(database_url: DatabaseUrl = None) -> None:
    """Show the database, its schema revision and what it holds."""
    from haechi.store import areas, places, sensing
    from haechi.store.db import revision_info

    engine = _engine(database_url)
    current, head = revision_info(engine)
    with engine.connect() as conn:
        counts = {"areas": areas.count_areas(conn), "places": places.count_places(conn),
                  "observations": sensing.count_observations(conn)}
    table = Table("", "", title="Haechi integrated DB (통합DB)")
    table.add_row("database", engine.url.render_as_string(hide_password=True))
    table.add_row("revision", f"{current} (code: {head})")
    for name, value in counts.items():
        table.add_row(name, str(value))
    console.print(table)


# ── tokens ───────────────────────────────────────────────────────────────────────────────


@token_app.command("create")
def token_create(
    name: Annotated[str, typer.Argument(help="Who or what holds the token, e.g. 'gauge-gateway-1'.")],
    role: Annotated[Role, typer.Option(help="What the token may do.")] = Role.OPERATOR,
    center: Annotated[Center | None, typer.Option(help="Operators: their situation room.")] = None,
    area: Annotated[str | None, typer.Option(help="District officials: their district code.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Create an API token; it is printed once and only its hash is stored."""
    from haechi.store import access

    if role is Role.OPERATOR and center is None:
        raise _fail(HaechiError("an operator token needs --center (cctv, situation_room or 119)"))
    if role is Role.DISTRICT_OFFICIAL and area is None:
        raise _fail(HaechiError("a district official token needs --area (the district code, e.g. 11680)"))
    with _engine(database_url).begin() as conn:
        token_id, token = access.create_token(
            conn, name, role.value, center=center.value if center else None, area_code=area
        )
        access.record(conn, _actor(), "token.create", target=f"token:{token_id}", detail={"role": role.value})
    console.print(f"token {token_id} for {name} ({role.value}); keep it now, it is not shown again:")
    print(token)


@token_app.command("revoke")
def token_revoke(token_id: int, database_url: DatabaseUrl = None) -> None:
    """Revoke a token at once."""
    from haechi.store import access

    try:
        with _engine(database_url).begin() as conn:
            access.revoke_token(conn, token_id)
            access.record(conn, _actor(), "token.revoke", target=f"token:{token_id}")
    except HaechiError as exc:
        raise _fail(exc) from exc
    console.print(f"token {token_id} revoked")


@token_app.command("list")
def token_list(database_url: DatabaseUrl = None) -> None:
    """List tokens (never their secrets)."""
    from haechi.store import access

    with _engine(database_url).connect() as conn:
        rows = access.list_tokens(conn)
    table = Table("id", "name", "role", "center", "area", "created", "revoked")
    for r in rows:
        table.add_row(str(r["id"]), r["name"], r["role"], r["center"] or "", r["area_code"] or "",
                      f"{r['created_at']:%Y-%m-%d %H:%M}", f"{r['revoked_at']:%Y-%m-%d}" if r["revoked_at"] else "")
    console.print(table)


# ── dead letters ─────────────────────────────────────────────────────────────────────────


@deadletter_app.command("list")
def deadletter_list(
    source: Annotated[str | None, typer.Option(help="Only letters whose source starts with this, e.g. mqtt:")] = None,
    limit: Annotated[int, typer.Option(help="Most letters to show.")] = 50,
    database_url: DatabaseUrl = None,
) -> None:
    """Show pending dead letters: when, from where, why, and what arrived."""
    from haechi.store import deadletters

    with _engine(database_url).connect() as conn:
        letters = deadletters.pending(conn, source=source, limit=limit)
    table = Table("id", "received", "source", "reason", "payload", title="Dead letters (대기 중)")
    for d in letters:
        payload = d["payload"] if len(d["payload"]) <= 60 else d["payload"][:57] + "…"
        table.add_row(str(d["id"]), f"{d['received_at']:%Y-%m-%d %H:%M:%S}", d["source"], d["reason"], payload)
    console.print(table if letters else "no pending dead letters")


@deadletter_app.command("replay")
def deadletter_replay(
    ids: Annotated[list[int] | None, typer.Argument(help="Letters to replay (default: every pending one).")] = None,
    payload: Annotated[str | None, typer.Option(help="A corrected payload (JSON) for a single letter.")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Send dead letters through the pipeline again; a letter is done once all of it is stored.
    Records of warnings no district holds (source warning:…) are not readings: they are left."""
    from haechi.ingest.pipeline import Pipeline
    from haechi.ingest.redeliver import redeliver
    from haechi.store import access, deadletters

    engine = _engine(database_url)
    if payload is not None and len(ids or []) != 1:
        raise _fail(HaechiError("--payload corrects one letter: give exactly one id"))
    with engine.connect() as conn:
        try:
            letters = [deadletters.get(conn, i) for i in ids] if ids else deadletters.pending(conn, limit=10_000)
        except HaechiError as exc:
            raise _fail(exc) from exc
    records = [letter for letter in letters if not deadletters.replayable(letter)]
    for letter in records:  # a warning no district holds: an operator places its sensor instead
        console.print(f"{letter['id']}: [cyan]left[/cyan] — a record of a warning, not readings: {letter['reason']}")
    pipeline = Pipeline(engine)
    outcomes = [redeliver(pipeline, letter, payload) for letter in letters if deadletters.replayable(letter)]
    for o in outcomes:
        mark = "[green]replayed[/green]" if o.replayed else "[yellow]still pending[/yellow]"
        console.print(f"{o.letter_id}: {mark} — {o.detail}")
    with engine.begin() as conn:
        access.record(conn, _actor(), "deadletter.replay", detail={
            "replayed": [o.letter_id for o in outcomes if o.replayed],
            "pending": [o.letter_id for o in outcomes if not o.replayed]})
    if any(not o.replayed for o in outcomes):
        raise typer.Exit(code=1)


# ── alerts by hand ───────────────────────────────────────────────────────────────────────


@alert_app.command("issue")
def alert_issue(
    hazard: Annotated[str, typer.Option(help="e.g. heavy_rain, fine_dust, river_flood, heat_wave")],
    level: Annotated[str, typer.Option(help="advisory, warning … (see GET /api/v1/criteria)")],
    area: Annotated[str, typer.Option(help="District (5 digits) or dong (8 digits) code")],
    value: Annotated[float | None, typer.Option(help="The observed value to quote.")] = None,
    language: Annotated[list[str] | None, typer.Option(help="Only these languages (repeat).")] = None,
    exercise: Annotated[bool, typer.Option("--exercise", help="A drill: CAP status Exercise.")] = False,
    test: Annotated[bool, typer.Option("--test", help="An end-to-end check with an aggregator: CAP status Test, "
                                       "only in /alerts/aggregators.atom, never to citizens.")] = False,
    database_url: DatabaseUrl = None,
) -> None:
    """Issue (or update) a warning and its CAP alert by hand; the server's feeds show it within 10 s."""
    import asyncio

    from haechi.core.clock import utcnow
    from haechi.warnings import manual

    try:
        request = manual.ManualAlert(hazard=hazard, level=level, area=area, value=value, languages=language,
                                     exercise=exercise, test=test)
        alert = asyncio.run(manual.issue(_engine(database_url), _no_bus(), request, sender=get_settings().cap_sender,
                                         now=utcnow(), actor=_actor()))
    except HaechiError as exc:
        raise _fail(exc) from exc
    except ValueError as exc:  # pydantic: a malformed option
        raise _fail(HaechiError(str(exc))) from exc
    _audit("alert.issue", alert, database_url)
    console.print(f"[green]{alert['msg_type']}[/green] {alert['identifier']} ({alert['status']})")
    console.print(alert["headline"].get("ko") or next(iter(alert["headline"].values())))


@alert_app.command("cancel")
def alert_cancel(warning_id: int, database_url: DatabaseUrl = None) -> None:
    """Cancel a warning in force (the all-clear)."""
    import asyncio

    from haechi.core.clock import utcnow
    from haechi.warnings import manual

    try:
        alert = asyncio.run(manual.cancel(_engine(database_url), _no_bus(), warning_id,
                                          sender=get_settings().cap_sender, now=utcnow(), actor=_actor()))
    except HaechiError as exc:
        raise _fail(exc) from exc
    _audit("alert.cancel", alert, database_url)
    console.print(f"[green]Cancel[/green] {alert['identifier']}")


def _no_bus():
    """A bus of this process's own, heard by no one: the command runs outside the server, so the
    ``warning.changed`` and ``alert.sent`` of an alert issued here reach none of its listeners. The
    server's feeds and API show the alert within 10 s (what they keep in memory lives that long
    without an event: ``haechi.api.public_cache``); its situation rooms and care
    service at their next reload or tick; its webhooks only with the refresher's next Update. Issue
    through the API (``POST /api/v1/alerts``) for all of them to hear at once."""
    from haechi.bus.memory import InProcessBus

    return InProcessBus()


def _audit(action: str, alert: dict, database_url: str | None = None) -> None:
    from haechi.store import access

    with _engine(database_url).begin() as conn:
        access.record(conn, _actor(), action, target=f"alert:{alert['id']}", detail={"identifier": alert["identifier"]})


# ── serve and demo ───────────────────────────────────────────────────────────────────────


#: A server holding thousands of live-stream clients tracks millions of objects; at CPython's default
#: first threshold (700) full collections stop it for 1–3 s, which is the p99 of an alert reaching
#: 10,000 clients (benchmarks/sse_fanout.py: p99 3.3 s by default, 0.49 s with these).
GC_THRESHOLDS = (100_000, 50, 100)
#: How long a thread holds the GIL before one waiting gets it (CPython's default: 5 ms). The MQTT
#: network thread waits for it after every socket read; beside a busy event loop and a database
#: thread it waited a whole interval each time, fell behind the broker, and a gauge reading sat
#: in the socket for up to 200 ms behind others (benchmarks/alert_latency.py; docs/benchmarks.md).
SWITCH_INTERVAL_S = 0.0005


def tune_interpreter() -> None:
    """What a long-running Haechi process sets before it starts: see the two constants above."""
    gc.set_threshold(*GC_THRESHOLDS)
    sys.setswitchinterval(SWITCH_INTERVAL_S)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to listen on.")] = None,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    load_city: Annotated[str | None, typer.Option("--load-city", help="Load this city pack first.")] = None,
    database_url: DatabaseUrl = None,
    workers: Annotated[int, typer.Option(min=1, help="Processes sharing the port, each an API replica "
                                                      "(more than 1 needs HAECHI_BUS_URL).")] = 1,
) -> None:
    """Run the Haechi server (API, docs, metrics); without a bus, the engine beside it.

    With HAECHI_BUS_URL this is a stateless API (role api), one of as many replicas as you like:
    `haechi worker`s store the readings, `haechi engine`s judge them. Without, one process runs
    everything (roles api + engine), storing in-process.
    """
    import os

    import uvicorn

    from haechi.api.app import create_app

    settings = get_settings()
    if workers > 1 and not settings.bus_url:  # each process would run an engine: every alert twice
        raise _fail(HaechiError("--workers above 1 needs a bus (HAECHI_BUS_URL): the processes are API replicas, "
                                "and `haechi engine` runs the warnings beside them"))
    engine = _engine(database_url)
    if load_city:
        load_with_progress(engine, load_city)
    host, port = host or settings.host, port or settings.port
    console.print(f"Haechi on [bold]http://{host}:{port}/[/bold] — API docs http://{host}:{port}/docs (Ctrl-C stops)")
    tune_interpreter()
    from haechi.api.serving import NO_DELAY_HTTP, UVICORN_OPTIONS

    if workers == 1:
        uvicorn.run(create_app(engine, settings), host=host, port=port, **UVICORN_OPTIONS)
        return
    os.environ["HAECHI_DATABASE_URL"] = database_url or settings.database_url  # read by each worker process
    uvicorn.run("haechi.cli:served_app", factory=True, workers=workers, http=NO_DELAY_HTTP, host=host, port=port,
                **UVICORN_OPTIONS)


def served_app():
    """The app of one ``haechi serve --workers N`` process, from the settings (the environment)."""
    from haechi.api.app import create_app
    from haechi.store.db import make_engine

    settings = get_settings()
    tune_interpreter()
    return create_app(make_engine(settings.database_url), settings)  # migrated by `serve` before it forked


@app.command()
def worker(
    bus_url: Annotated[str | None, typer.Option("--bus-url", envvar="HAECHI_BUS_URL",
                                                help="nats://host:port of NATS with JetStream.")] = None,
    database_url: DatabaseUrl = None,
    batch: Annotated[int, typer.Option("--batch", min=1, help="Queue messages fetched at a time.")] = 50,
) -> None:
    """Store queued observations from NATS JetStream into the DB; run as many as you like (작업자).

    Stops cleanly on SIGTERM or Ctrl-C; a killed worker's messages go to the others.
    """
    from haechi.bus.nats import EventStream
    from haechi.ingest.queue import IngestStream
    from haechi.worker import run

    settings = get_settings()
    url = bus_url or settings.bus_url
    if not url:
        raise _fail(HaechiError("a worker needs the NATS URL: --bus-url or HAECHI_BUS_URL"))
    prefix = settings.bus_prefix  # this installation's queue and event stream, as its API and engines use
    tune_interpreter()
    try:
        run(database_url or settings.database_url, url, batch=batch, stream=IngestStream.of(prefix),
            events=EventStream.of(prefix))
    except HaechiError as exc:
        raise _fail(exc) from exc


#: ``haechi engine``'s exit status when it lost the lead (sysexits' EX_TEMPFAIL): its supervisor
#: restarts it, and it comes back as a standby.
EXIT_LEAD_LOST = 75


@app.command("engine")
def engine_(
    bus_url: Annotated[str | None, typer.Option("--bus-url", envvar="HAECHI_BUS_URL",
                                                help="nats://host:port of NATS with JetStream.")] = None,
    name: Annotated[str | None, typer.Option("--name", envvar="HAECHI_PROCESS_NAME",
                                             help="This engine's name in the cluster (default: host-pid).")] = None,
    database_url: DatabaseUrl = None,
) -> None:
    """Run the engine alone, no HTTP: warnings, forecasts, care, deliveries, schedules (엔진).

    Its events come and go over NATS, beside `haechi serve` and `haechi worker`s. Run two or more
    on PostgreSQL: one leads (a PostgreSQL advisory lock), the others stand by and take over
    within seconds when it dies. Stops cleanly on SIGTERM or Ctrl-C; exits with status 75 when
    it loses the lead, to be restarted as a standby.
    """
    import asyncio
    import logging

    from haechi.runtime import Context, LeadershipLost, run_roles
    from haechi.runtime import Role as ProcessRole
    from haechi.runtime.parts import PARTS

    settings = get_settings()
    settings = settings.model_copy(update={"bus_url": bus_url or settings.bus_url})
    if not settings.bus_url:
        console.print("[yellow]no bus (--bus-url or HAECHI_BUS_URL)[/yellow]: only the schedules run; "
                      "nothing reaches this engine from other processes")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    context = Context.of(_engine(database_url), settings, name="haechi-engine", **({"member": name} if name else {}))
    console.print(f"Haechi engine {context.member} running (Ctrl-C stops)")
    tune_interpreter()
    try:
        asyncio.run(run_roles(context, {ProcessRole.ENGINE}, PARTS))
    except LeadershipLost:
        raise typer.Exit(EXIT_LEAD_LOST) from None


# ── cluster ──────────────────────────────────────────────────────────────────────────────


@cluster_app.command("status")
def cluster_status(database_url: DatabaseUrl = None) -> None:
    """The processes of this installation: name, roles, host and pid, leader ★, lag, last seen.

    Every `haechi serve`, `engine` and `worker` heartbeats every few seconds; one that missed
    three heartbeats is marked gone (killed, or its machine is).
    """
    from haechi.core.clock import utcnow
    from haechi.runtime.membership import GONE_AFTER_S, is_gone
    from haechi.store import cluster

    with _engine(database_url).connect() as conn:
        members = cluster.members(conn)
    now = utcnow()
    table = Table("", "name", "roles", "host", "pid", "lag", "started", "last seen", "state",
                  title="Haechi cluster (클러스터)")
    for m in members:
        gone = is_gone(m, now)
        table.add_row("★" if m["leader"] and not gone else "", m["name"], m["roles"], m["host"], str(m["pid"]),
                      "—" if m["lag"] is None else f"{m['lag']:,}", f"{m['started_at']:%Y-%m-%d %H:%M:%S}Z",
                      f"{(now - m['seen_at']).total_seconds():.0f} s ago",
                      "[red]gone[/red]" if gone else "[green]up[/green]", style="dim" if gone else None)
    console.print(table)
    leaders = [m["name"] for m in members if m["leader"] and not is_gone(m, now)]
    engines = [m for m in members if "engine" in m["roles"].split("+") and not is_gone(m, now)]
    if leaders:
        console.print(f"leader: [bold]{leaders[0]}[/bold] ★; {len(engines) - 1} standing by")
    elif engines:
        console.print(f"[yellow]no engine leads[/yellow] ({len(engines)} standing by)")
    else:
        console.print(f"[yellow]no engine[/yellow] seen in the last {GONE_AFTER_S:g} s")


@app.command()
def demo(
    scenario: Annotated[str, typer.Option(help="Which scenario to replay (see --list).")] = "han-river-flood-2020",
    speed: Annotated[float, typer.Option(help="Scenario seconds per real second (0: as fast as possible).")] = 3600,
    headless: Annotated[bool, typer.Option("--headless", help="No server: print the timeline and exit.")] = False,
    list_: Annotated[bool, typer.Option("--list", help="List the scenarios and exit.")] = False,
    port: Annotated[int | None, typer.Option(help="TCP port.")] = None,
    database_url: Annotated[
        str | None, typer.Option("--database-url", help="Default: a fresh haechi-demo.db, kept for inspection.")
    ] = None,
) -> None:
    """The main job: load the Seoul pack and replay a real disaster through the live pipeline.

    Warnings and CAP alerts unfold as the readings arrive; the server (unless --headless) shows them
    on its API, stream and feeds. Ctrl-C stops; the database stays for inspection.
    """
    import asyncio
    from pathlib import Path

    from haechi.demo import run
    from haechi.demo.replay import scenario as find
    from haechi.demo.replay import scenarios

    if list_:
        table = Table("scenario", "제목", "title")
        for name, s in scenarios().items():
            table.add_row(name, s.title_ko, s.title_en)
        console.print(table)
        return
    try:
        chosen = find(scenario)
    except HaechiError as exc:
        raise _fail(exc) from exc
    if database_url is None:  # a fresh database each time: a replay's alerts are new, not duplicates
        for suffix in ("", "-wal", "-shm"):
            Path(f"haechi-demo.db{suffix}").unlink(missing_ok=True)
        database_url = "sqlite:///haechi-demo.db"
    engine = _engine(database_url)
    load_with_progress(engine, get_settings().city)
    try:
        if headless:
            asyncio.run(run.headless(engine, chosen, speed, console))
        else:
            asyncio.run(_serve_and_play(engine, chosen, speed, port))
    except KeyboardInterrupt:
        console.print("stopped; the database stays for inspection")


async def _serve_and_play(engine, chosen, speed: float, port: int | None) -> None:
    import asyncio

    import uvicorn

    from haechi.api.app import create_app
    from haechi.demo import run

    settings = get_settings()
    app = create_app(engine, settings)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.host, port=port or settings.port, log_level="warning"))
    serving = asyncio.create_task(server.serve())
    while not server.started and not serving.done():
        await asyncio.sleep(0.05)
    if serving.done():
        return await serving
    url = f"http://{settings.host}:{port or settings.port}/"
    console.print(f"Haechi on [bold]{url}[/bold] — alerts {url}alerts.atom, live {url}api/v1/stream (Ctrl-C stops)")
    run.show_timeline(app.state.bus, console)
    playing = asyncio.create_task(run.play(app.state.sink, chosen, engine, speed, console))
    await serving  # until Ctrl-C
    playing.cancel()


# ── simulate ─────────────────────────────────────────────────────────────────────────────


@simulate_app.command("sensors")
def simulate_sensors(
    rate: Annotated[float, typer.Option(min=0.001, help="Observations per second, all streams together.")] = 100.0,
    mqtt_url: Annotated[str | None,
                        typer.Option("--mqtt-url", help="Publish to this broker: mqtt://host:1883.")] = None,
    http_url: Annotated[str | None, typer.Option("--http-url", help="POST to this Haechi: http://host:8000.")] = None,
    token: Annotated[str | None,
                     typer.Option("--token", envvar="HAECHI_TOKEN", help="API token for --http-url.")] = None,
    duration: Annotated[float | None, typer.Option(min=0, help="Seconds to run; until Ctrl-C when left out.")] = None,
    seed: Annotated[int, typer.Option(help="Same seed, same weather.")] = 0,
    speed: Annotated[float, typer.Option(min=0.001, help="Weather runs this many times faster than the clock.")] = 1.0,
    topic_prefix: Annotated[str,
                            typer.Option(help="MQTT topics: <prefix>/<datastream id>/observations.")] = "haechi/v1",
    database_url: DatabaseUrl = None,
) -> None:
    """Publish realistic sensor streams for the loaded city's station datastreams (MQTT QoS 1 or HTTP)."""
    from rich.progress import SpinnerColumn

    from haechi.ingest import sensor_simulator

    if (mqtt_url is None) == (http_url is None):
        raise _fail(HaechiError("say where to publish: --mqtt-url or --http-url (one of them)"))
    streams = sensor_simulator.load_streams(_engine(database_url))
    if not any(sensor_simulator.simulated(s) for s in streams):
        raise _fail(HaechiError("no station datastreams to simulate; load a city pack first (haechi city load seoul)"))
    publisher = (sensor_simulator.MqttPublisher(mqtt_url, topic_prefix=topic_prefix) if mqtt_url
                 else sensor_simulator.HttpPublisher(http_url, token))
    target = mqtt_url or http_url
    columns = (SpinnerColumn(), TextColumn("{task.description}"), BarColumn(),
               TextColumn("{task.completed:,.0f} sent · {task.fields[confirmed]:,} acknowledged · "
                          "{task.fields[backlog]:,} waiting · {task.fields[rate]:,.0f}/s"), TimeElapsedColumn())
    count = sum(map(sensor_simulator.simulated, streams))
    console.print(f"simulating {count} datastreams at {rate:g} observations/s → {target} (Ctrl-C stops)")
    with Progress(*columns, console=console) as bar:
        task = bar.add_task("sensors", total=rate * duration if duration else None, confirmed=0, backlog=0, rate=0.0)

        def show(p: sensor_simulator.Progress) -> None:
            bar.update(task, completed=p.sent, confirmed=p.confirmed, backlog=p.backlog,
                       rate=p.sent / p.elapsed_s if p.elapsed_s else 0.0)

        try:
            done = sensor_simulator.run(streams, publisher, rate, duration=duration, seed=seed, speed=speed,
                                        on_progress=show)
        except sensor_simulator.PublishRefused as exc:
            raise _fail(HaechiError(str(exc))) from exc
    ending = "stopped" if done.interrupted else "done"
    console.print(f"[green]{ending}[/green]: {done.sent:,} observations sent, {done.confirmed:,} acknowledged "
                  f"in {done.elapsed_s:.1f} s" + (f"; {done.backlog:,} never acknowledged" if done.backlog else ""))
    if done.skipped_streams:
        console.print(f"not simulated (no model for their property): datastreams {done.skipped_streams}")


if __name__ == "__main__":
    app()
